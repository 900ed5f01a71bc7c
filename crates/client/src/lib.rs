//! Porter client (skeleton).
