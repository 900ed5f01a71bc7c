//! The command line's parsers for the modes whose names the libraries own
//! (`--auth`, `--service`, `--registration`): clap lists the accepted names
//! in `--help` and in its error, and the value is parsed by the type's own
//! `FromStr`, so no second spelling of a mode exists here.

use std::error::Error;
use std::str::FromStr;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use porter_server::Registration;
use porter_wire::{AuthMode, ServiceKind};

/// A parser accepting the names of `all` (as `name` spells them).
fn named<T>(all: &[T], name: fn(T) -> &'static str) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Copy + Clone + Send + Sync + 'static,
    T::Err: Error + Send + Sync + 'static,
{
    PossibleValuesParser::new(all.iter().map(|mode| name(*mode))).try_map(|s| s.parse::<T>())
}

/// `--auth`: every auth mode.
pub fn auth_mode() -> impl TypedValueParser<Value = AuthMode> {
    named(&AuthMode::ALL, AuthMode::as_str)
}

/// `--auth` of a command that supports only some modes.
pub fn auth_mode_of(modes: &[AuthMode]) -> impl TypedValueParser<Value = AuthMode> {
    named(modes, AuthMode::as_str)
}

/// `--service`.
pub fn service() -> impl TypedValueParser<Value = ServiceKind> {
    named(&ServiceKind::ALL, ServiceKind::as_str)
}

/// `--registration`.
pub fn registration() -> impl TypedValueParser<Value = Registration> {
    named(&Registration::ALL, Registration::as_str)
}
