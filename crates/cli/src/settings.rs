//! Where each option of `porter serve` comes from: its flag, its `PORTER_…`
//! environment variable, the config file (`porter.toml`), or its default,
//! in that order, for every option.
//!
//! There is one mechanism for all of them, driven by clap's own
//! description of the command, so that an option added to `ServeArgs` has
//! its variable and its key with no line of its own here:
//!
//! - [`with_env`] gives every option without one the variable `PORTER_` +
//!   its long name in capitals (`--max-connections`: `PORTER_MAX_CONNECTIONS`).
//! - A file key is the long name (`max-connections = 512`). The file is
//!   read with serde and the `toml` crate into spanned values, and every
//!   key must name an option (so a typo is an error, as serde's
//!   `deny_unknown_fields` would make it, but from the one list of options
//!   that clap has). Each value is checked by the option's own clap value
//!   parser, so the file accepts exactly what the flag accepts, and an
//!   error names the file, the line and the key.
//! - The command line is first parsed without the rules that tie options
//!   together ([`before_merge`]): a flag's partner may be in the file.
//! - [`resolve`] asks clap where each value came from
//!   (`ArgMatches::value_source`): what came from neither a flag nor the
//!   environment is taken from the file, if the file has it, and the
//!   command is parsed again with those values. clap then builds
//!   `ServeArgs` as always; defaults stay where clap keeps them.
//!
//! [`Resolved::print`] shows the effective values as a `porter.toml`, each
//! with its source; the values of options that hide their environment
//! value (secrets) and the password in a database URL are not shown.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::Spanned;

/// What every option's environment variable starts with.
pub const ENV_PREFIX: &str = "PORTER_";

/// The config file's name in the XDG config directory
/// (`~/.config/porter/porter.toml`).
pub const CONFIG_FILE: &str = "porter.toml";

/// The options that are not settings: they choose the file or what to do
/// with it, and have no key in it.
const NOT_KEYS: [&str; 3] = ["help", "config", "print-config"];

/// Options that have no environment variable either.
const NO_ENV: [&str; 2] = ["help", "print-config"];

/// The option whose value is a database location, shown without the
/// password a URL may hold.
const DB_KEY: &str = "db";

/// `cmd` with an environment variable for every option that has none:
/// `PORTER_` + the long name in capitals, dashes as underscores.
pub fn with_env(cmd: Command) -> Command {
    cmd.mut_args(|arg| {
        let name = match arg.get_long() {
            Some(long) if arg.get_env().is_none() && !NO_ENV.contains(&long) => env_name(long),
            _ => return arg,
        };
        arg.env(name)
    })
}

/// `cmd` as the command line is first parsed, before the config file is
/// merged: what one option needs of another (`--tls-cert` requires
/// `--tls-key`, say) is not checked yet, since the partner may be in the
/// file. [`resolve`] parses again with `cmd` itself, which checks it.
pub fn before_merge(cmd: Command) -> Command {
    cmd.mut_args(|arg| {
        arg.requires(clap::builder::Resettable::<clap::Id>::Reset)
            .conflicts_with(clap::builder::Resettable::<clap::Id>::Reset)
            .required(false)
    })
}

/// The environment variable of the option `--long`.
pub fn env_name(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

/// Whether `arg` can be set in the file.
fn is_key(arg: &Arg) -> bool {
    arg.get_long().is_some_and(|long| !NOT_KEYS.contains(&long))
}

/// Whether `arg` is a switch (`--flag`, no value): `true` or `false` in the
/// file.
fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// This environment variable.
    Env(String),
    /// This line of the config file.
    File(PathBuf, usize),
    /// The option's default.
    Default,
    /// Nowhere: the option has no default and is not set.
    Unset,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(path, line) => write!(f, "file {}:{line}", path.display()),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("not set"),
        }
    }
}

/// One value read from the file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileValue {
    /// As it goes on a command line: `--key=value`, or `--key` for a switch
    /// set to true, nothing for one set to false.
    args: Vec<OsString>,
    /// Where it is, for [`Source::File`].
    line: usize,
}

/// A config file, read and checked against the options of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    path: PathBuf,
    /// By option id.
    values: BTreeMap<String, FileValue>,
}

impl FileSettings {
    /// Reads `path` and checks every key and value against `cmd`'s options.
    ///
    /// # Errors
    /// A file that cannot be read, is not TOML, has a key that is no
    /// option, or a value the option refuses: the message names the file,
    /// the line and the key.
    pub fn load(path: &Path, cmd: &Command) -> anyhow::Result<FileSettings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        FileSettings::parse(path, &text, cmd)
    }

    /// [`FileSettings::parse`], for the tests of other modules.
    #[cfg(test)]
    pub fn parse_for_tests(path: &Path, text: &str, cmd: &Command) -> anyhow::Result<FileSettings> {
        FileSettings::parse(path, text, cmd)
    }

    /// [`FileSettings::load`] on `text`, the contents of `path`.
    fn parse(path: &Path, text: &str, cmd: &Command) -> anyhow::Result<FileSettings> {
        let at = |offset: usize| format!("{}:{}", path.display(), line_of(text, offset));
        let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
            toml::from_str(text).map_err(|err| match err.span() {
                Some(span) => anyhow!("{}: {}", at(span.start), err.message().trim_end()),
                None => anyhow!("{}: {}", path.display(), err.message().trim_end()),
            })?;
        // Options are checked without their environment variables, so that
        // a bad variable is not blamed on the file.
        let check = cmd.clone().mut_args(|arg| arg.env(None::<&str>));
        let mut values = BTreeMap::new();
        for (key, value) in table {
            let line = line_of(text, key.span().start);
            let key = key.into_inner();
            let Some(arg) = check
                .get_arguments()
                .find(|a| is_key(a) && a.get_long() == Some(&key))
            else {
                let hint = hint_for(&check, &key);
                bail!("{}: unknown key `{key}`{hint}", at(value.span().start));
            };
            let args = file_args(arg, &key, value.get_ref())
                .and_then(|args| check_args(&check, &args).map(|()| args))
                .map_err(|why| anyhow!("{}: key `{key}`: {why}", at(value.span().start)))?;
            values.insert(arg.get_id().to_string(), FileValue { args, line });
        }
        Ok(FileSettings {
            path: path.to_owned(),
            values,
        })
    }
}

/// " (did you mean `x`?)" when `key` is an option's name with underscores,
/// or a `--flag` written with its dashes.
fn hint_for(cmd: &Command, key: &str) -> String {
    let guess = key.trim_start_matches('-').replace('_', "-");
    if guess != key
        && cmd
            .get_arguments()
            .any(|a| is_key(a) && a.get_long() == Some(&guess))
    {
        format!(" (did you mean `{guess}`?)")
    } else {
        String::from(" (the keys are the long names of `porter serve --help`)")
    }
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A file value as the arguments that set it on a command line.
fn file_args(arg: &Arg, key: &str, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let flag = format!("--{key}");
    if is_switch(arg) {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![flag.into()]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            other => Err(format!(
                "expected true or false, found {}",
                other.type_str()
            )),
        };
    }
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            return Err(format!("expected one value, found {}", value.type_str()));
        }
    };
    Ok(vec![format!("{flag}={text}").into()])
}

/// Parses `args` alone with `cmd` (whose options have no environment
/// variables): the option's own value parser judges the value. What one
/// option needs of another (`--tls-cert` requires `--tls-key`) cannot be
/// judged alone: that is left to [`resolve`], which sees them all.
fn check_args(cmd: &Command, args: &[OsString]) -> Result<(), String> {
    let argv = std::iter::once(OsString::from(cmd.get_name())).chain(args.iter().cloned());
    match cmd.clone().try_get_matches_from(argv) {
        Ok(_) => Ok(()),
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::MissingRequiredArgument | ErrorKind::ArgumentConflict
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(clap_reason(&err)),
    }
}

/// clap's message without its `error: ` and its "For more information"
/// tail, on one line.
fn clap_reason(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let text = text
        .split("\n\nFor more information")
        .next()
        .unwrap_or(&text);
    let text = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The config file to read: `explicit` (from `--config` or
/// `PORTER_CONFIG`), else [`xdg_config_file`] if it exists, else none.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_owned());
    }
    xdg_config_file().filter(|path| path.is_file())
}

/// `porter.toml` in the XDG config directory (`$XDG_CONFIG_HOME/porter`,
/// else `~/.config/porter`); `None` without a home directory.
pub fn xdg_config_file() -> Option<PathBuf> {
    use etcetera::app_strategy::{AppStrategy, AppStrategyArgs, Xdg};
    let strategy = Xdg::new(AppStrategyArgs {
        top_level_domain: String::new(),
        author: String::new(),
        app_name: "porter".into(),
    })
    .ok()?;
    Some(strategy.config_dir().join(CONFIG_FILE))
}

/// The options of a command as they take effect, and where each came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The merged matches, from which clap builds the arguments.
    pub matches: ArgMatches,
    /// Each file key's option, its effective value and its source, in the
    /// command's order.
    pub settings: Vec<Setting>,
}

/// One option's effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Its file key (the long name).
    pub key: String,
    /// The value as TOML (`512`, `"info"`, `true`), secrets hidden; `None`
    /// when unset.
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
}

/// Merges `file` into `given`, the matches of `cmd` (built with
/// [`with_env`]): every option that came from neither a flag nor the
/// environment takes the file's value, if it has one.
///
/// # Errors
/// When the merged command line does not parse (it did, value by value,
/// when the file was loaded; an error here is a combination clap refuses).
pub fn resolve(
    cmd: &Command,
    given: &ArgMatches,
    file: Option<&FileSettings>,
) -> anyhow::Result<Resolved> {
    let mut argv = vec![OsString::from(cmd.get_name())];
    let mut sources = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let explicit = match given.value_source(id) {
            Some(ValueSource::CommandLine) => {
                argv.extend(command_line_args(arg, given));
                Some(Source::Flag)
            }
            Some(ValueSource::EnvVariable) => {
                let var = arg.get_env().map(|v| v.to_string_lossy().into_owned());
                Some(Source::Env(var.unwrap_or_default()))
            }
            _ => None,
        };
        let from_file = file.and_then(|f| f.values.get(id).map(|v| (f, v)));
        let source = match (explicit, from_file) {
            (Some(source), _) => source,
            (None, Some((file, value))) => {
                argv.extend(value.args.iter().cloned());
                Source::File(file.path.clone(), value.line)
            }
            (None, None) if arg.get_default_values().is_empty() && !is_switch(arg) => Source::Unset,
            (None, None) => Source::Default,
        };
        if is_key(arg) {
            sources.push((arg.clone(), source));
        }
    }
    let matches = cmd
        .clone()
        .try_get_matches_from(argv)
        .map_err(|err| match file {
            Some(file) => anyhow!(
                "{} (with {}): {}",
                cmd.get_name(),
                file.path.display(),
                clap_reason(&err)
            ),
            None => anyhow!("{}", clap_reason(&err)),
        })?;
    let settings = sources
        .into_iter()
        .map(|(arg, source)| Setting {
            key: arg.get_long().unwrap_or_default().to_owned(),
            value: shown_value(&arg, &matches),
            source,
        })
        .collect();
    Ok(Resolved { matches, settings })
}

/// The arguments that repeat on a command line what `given` holds for
/// `arg`, which came from the command line.
fn command_line_args(arg: &Arg, given: &ArgMatches) -> Vec<OsString> {
    let long = arg.get_long().unwrap_or_default();
    if is_switch(arg) {
        return vec![format!("--{long}").into()];
    }
    let Some(raw) = given.get_raw(arg.get_id().as_str()) else {
        return Vec::new();
    };
    raw.map(|value| {
        let mut one = OsString::from(format!("--{long}="));
        one.push(value);
        one
    })
    .collect()
}

/// `arg`'s value in `matches` as TOML, or `None` when unset. Secrets
/// (options that hide their environment value) show as `"(hidden)"`; a
/// database or bus URL loses its password.
fn shown_value(arg: &Arg, matches: &ArgMatches) -> Option<String> {
    let id = arg.get_id().as_str();
    if is_switch(arg) {
        return Some(matches.get_flag(id).to_string());
    }
    let raw: Vec<&OsStr> = matches.get_raw(id)?.collect();
    let text = raw
        .iter()
        .map(|v| v.to_string_lossy())
        .collect::<Vec<_>>()
        .join(",");
    if arg.get_long() == Some(DB_KEY) {
        return Some(toml_string(&porter_store::redact_location(Path::new(
            &text,
        ))));
    }
    if arg.get_long() == Some("bus") {
        return Some(toml_string(&porter_server::redact_url(&text)));
    }
    if arg.is_hide_env_values_set() {
        return Some(toml_string("(hidden)"));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<i64>().is_ok() {
        return Some(text);
    }
    Some(toml_string(&text))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Resolved {
    /// The effective settings as a `porter.toml`, each line commented with
    /// its source; an option that is not set is a comment.
    pub fn print(&self) -> String {
        let width = self
            .settings
            .iter()
            .filter_map(|s| s.value.as_ref().map(|v| s.key.len() + v.len() + 3))
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for setting in &self.settings {
            let line = match &setting.value {
                Some(value) => format!("{} = {value}", setting.key),
                None => format!("# {}", setting.key),
            };
            let _ = writeln!(out, "{line:<width$}  # {}", setting.source);
        }
        out
    }

    /// The setting of `key`.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, FromArgMatches};

    /// A small command with the kinds of options `serve` has.
    #[derive(Debug, Args)]
    struct Demo {
        #[arg(long, default_value_t = 9)]
        limit: u32,
        #[arg(long)]
        host: Option<String>,
        #[arg(long, default_value = "info")]
        log_level: String,
        #[arg(long)]
        tls: bool,
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        #[arg(long, hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    }

    fn demo_command() -> Command {
        with_env(Demo::augment_args(Command::new("demo")))
    }

    fn file(text: &str) -> anyhow::Result<FileSettings> {
        FileSettings::parse(Path::new("porter.toml"), text, &demo_command())
    }

    fn resolved(argv: &[&str], text: &str) -> (Demo, Resolved) {
        let cmd = demo_command();
        let given = before_merge(cmd.clone())
            .try_get_matches_from(std::iter::once("demo").chain(argv.iter().copied()))
            .unwrap();
        let file = file(text).unwrap();
        let resolved = resolve(&cmd, &given, Some(&file)).unwrap();
        (Demo::from_arg_matches(&resolved.matches).unwrap(), resolved)
    }

    #[test]
    fn every_option_but_help_and_print_config_gets_a_porter_variable() {
        let cmd = demo_command();
        let env = |id: &str| {
            cmd.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        };
        assert_eq!(env("limit").as_deref(), Some("PORTER_LIMIT"));
        assert_eq!(env("log_level").as_deref(), Some("PORTER_LOG_LEVEL"));
        assert_eq!(env("config").as_deref(), Some("PORTER_CONFIG"));
    }

    #[test]
    fn the_file_fills_what_flags_leave_at_their_defaults() {
        let (demo, resolved) = resolved(
            &["--limit", "3"],
            "limit = 7\nhost = \"::1\"\nlog-level = \"debug\"\ntls = true\n",
        );
        assert_eq!(demo.limit, 3);
        assert_eq!(demo.host.as_deref(), Some("::1"));
        assert_eq!(demo.log_level, "debug");
        assert!(demo.tls);
        assert_eq!(resolved.get("limit").unwrap().source, Source::Flag);
        assert_eq!(
            resolved.get("host").unwrap().source,
            Source::File("porter.toml".into(), 2)
        );
        assert_eq!(resolved.get("token").unwrap().source, Source::Unset);
    }

    #[test]
    fn print_shows_values_as_toml_with_their_sources_and_hides_secrets() {
        let (_, resolved) = resolved(&["--token", "s3cret"], "tls = true\n");
        let shown = resolved.print();
        assert!(shown.contains("limit = 9"), "{shown}");
        assert!(shown.contains("# default"), "{shown}");
        assert!(shown.contains("log-level = \"info\""), "{shown}");
        assert!(shown.contains("tls = true"), "{shown}");
        assert!(shown.contains("# file porter.toml:1"), "{shown}");
        assert!(shown.contains("token = \"(hidden)\""), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("# host"), "{shown}");
        assert!(!shown.contains("config ="), "{shown}");
    }

    #[test]
    fn an_unknown_key_names_the_file_the_line_and_the_key() {
        let err = file("limit = 1\n\nlimitt = 2\n").unwrap_err().to_string();
        assert!(
            err.starts_with("porter.toml:3: unknown key `limitt`"),
            "{err}"
        );
        let err = file("log_level = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("did you mean `log-level`?"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_file_the_line_and_the_key_with_the_flags_reason() {
        let err = file("host = \"a\"\nlimit = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("porter.toml:2: key `limit`:"), "{err}");
        assert!(err.contains("invalid digit"), "{err}");
        let err = file("tls = \"yes\"\n").unwrap_err().to_string();
        assert!(err.contains("key `tls`: expected true or false"), "{err}");
        let err = file("limit = [1, 2]\n").unwrap_err().to_string();
        assert!(err.contains("expected one value, found array"), "{err}");
        let err = file("config = \"other.toml\"\n").unwrap_err().to_string();
        assert!(err.contains("unknown key `config`"), "{err}");
    }

    #[test]
    fn options_that_need_each_other_are_judged_together() {
        let (demo, _) = resolved(&[], "cert = \"c.pem\"\nkey = \"k.pem\"\n");
        assert_eq!(demo.cert.as_deref(), Some(Path::new("c.pem")));
        // One from the file, its partner from a flag.
        let (demo, _) = resolved(&["--key", "k.pem"], "cert = \"c.pem\"\n");
        assert_eq!(demo.key.as_deref(), Some(Path::new("k.pem")));
        // Alone, it is an error naming the file.
        let cmd = demo_command();
        let given = cmd.clone().try_get_matches_from(["demo"]).unwrap();
        let file = file("cert = \"c.pem\"\n").unwrap();
        let err = resolve(&cmd, &given, Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("(with porter.toml)") && err.contains("--key"),
            "{err}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_the_line() {
        let err = file("limit = 1\nhost = \n").unwrap_err().to_string();
        assert!(err.starts_with("porter.toml:2:"), "{err}");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
