//! Porter server (skeleton).
