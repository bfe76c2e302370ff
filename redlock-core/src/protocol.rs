//! The Redis protocol the Redis adapters share: what each request sends, how
//! a reply becomes a [`Reply`], and what each server error code means.
//!
//! An adapter over a Redis client (`redlock-redis-rs`, `redlock-fred`, your
//! own) keeps only what depends on its client: connections, turning a [`Call`]
//! into the client's command type, turning the client's reply value into a
//! [`RawReply`], and mapping the client's own errors (I/O, timeouts, routing).
//! Everything about Redis itself is decided here, once.
//!
//! # What goes over the wire
//!
//! Every operation runs the request's [script](Request::script) by its SHA-1:
//!
//! ```text
//! EVALSHA <sha1> <numkeys> <key>... <value> <ttl ms> <extra arg>...
//! ```
//!
//! The keys are [`Request::keys`]: the resources, then any
//! [extra keys](Request::extra_keys) (the fence counters of a fenced acquire);
//! `numkeys` counts them. The extra arguments carry a fencing token. The
//! built-in release scripts are sent the value alone
//! ([`Script::takes_value_only`](crate::Script::takes_value_only)): a release
//! has no TTL, and the wake-on-release scripts name the release channels
//! themselves, so neither travels (`EVALSHA <sha1> <numkeys> <key>... <value>`).
//! If the node answers `NOSCRIPT` (a new
//! or restarted node, or one that ran `SCRIPT FLUSH`), the same call goes out
//! once more with the script's text, which also loads it for next time
//! ([`Call::fallback`]):
//!
//! ```text
//! EVAL <script text> <numkeys> <key>... <value> <ttl ms> <extra arg>...
//! ```
//!
//! An acquire the algorithm allows as a plain `SET` ([`Request::plain_set_nx`]:
//! the first attempt on one resource with the built-in script) is sent as
//! `SET <key> <value> NX PX <ttl ms>` instead ([`Call::acquire`]), which does
//! the same for less work on the node.
//!
//! ```
//! use redlock_core::protocol::{Arg, Call, Command};
//! use redlock_core::{Request, Scripts};
//! use std::time::Duration;
//!
//! let scripts = Scripts::default();
//! let resources = ["invoice:42".to_owned()];
//! let request = Request::new(&resources, "v1", Duration::from_secs(10), scripts.extend());
//! let call = Call::script(&request);
//! assert_eq!(call.command(), Command::EvalSha);
//! let args: Vec<Arg<'_>> = call.args().collect();
//! assert_eq!(
//!     args,
//!     [
//!         Arg::Str(scripts.extend().sha1()),
//!         Arg::Int(1),
//!         Arg::Str("invoice:42"),
//!         Arg::Str("v1"),
//!         Arg::Int(10_000),
//!     ]
//! );
//! // The node lost its script cache: resend by text.
//! let eval = call.fallback("NOSCRIPT").expect("EVALSHA falls back to EVAL");
//! assert_eq!(eval.command(), Command::Eval);
//! assert_eq!(eval.args().next(), Some(Arg::Str(scripts.extend().text())));
//!
//! // A built-in release: the value alone.
//! let release = Request::new(&resources, "v1", Duration::ZERO, scripts.release());
//! let args: Vec<Arg<'_>> = Call::script(&release).args().collect();
//! assert_eq!(
//!     args,
//!     [Arg::Str(scripts.release().sha1()), Arg::Int(1), Arg::Str("invoice:42"), Arg::Str("v1")]
//! );
//! ```
//!
//! # Replies
//!
//! | command | reply | [`Reply`] |
//! |---|---|---|
//! | `SET NX PX` | `OK` | applied to 1 key |
//! | `SET NX PX` | nil | applied to 0 keys (held by someone else) |
//! | a script | an integer `n` | applied to `n` keys ([`Reply::from_script_integer`]) |
//! | a script | an array of two integers `[n, fence]` (the fenced acquire) | applied to `n` keys, with the fence ([`Reply::from_script_pair`]) |
//! | either | anything else | an [`ErrorKind::Protocol`] error naming what came back (cut short) |
//!
//! An adapter converts its client's value into a [`RawReply`] and hands it to
//! [`Call::reply`].
//!
//! # Server error codes
//!
//! A Redis error reply is a line `CODE detail...`; [`split_error_line`] splits
//! it, and [`server_error_kind`] gives the core's kind, which decides whether
//! the algorithm retries (see [`ErrorKind::is_permanent`]):
//!
//! | code | kind | retried |
//! |---|---|---|
//! | `CROSSSLOT` | [`ErrorKind::CrossSlot`]; the message carries [`CROSS_SLOT_HINT`] | no |
//! | `NOAUTH`, `WRONGPASS`, `NOPERM` | [`ErrorKind::Auth`] | no |
//! | `WRONGTYPE`; `ERR` whose detail names a script (a Lua error, a script that does not compile) | [`ErrorKind::Script`] | no |
//! | `ERR unknown command ...` (a server without `EVALSHA`) | [`ErrorKind::Unsupported`] | no |
//! | `BUSY`, `LOADING`, `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`, `READONLY`, `OOM`, `MISCONF`, `NOREPLICAS` | [`ErrorKind::Busy`] | yes |
//! | `MOVED`, `ASK` (a cluster redirect the client did not follow; see [`is_redirect`]) | [`ErrorKind::Other`] | yes |
//! | `NOSCRIPT` (only after the fallback, see [`is_noscript`]), any other `ERR`, any other code | [`ErrorKind::Other`] | yes |
//!
//! ```
//! use redlock_core::protocol::{server_error_kind, split_error_line};
//! use redlock_core::ErrorKind;
//!
//! let line = "CROSSSLOT Keys in request don't hash to the same slot";
//! let (code, detail) = split_error_line(line).expect("a server error line");
//! assert_eq!(code, "CROSSSLOT");
//! assert_eq!(server_error_kind(code, detail), ErrorKind::CrossSlot);
//! ```

use std::fmt::{self, Write as _};

use crate::backend::{BackendError, ErrorKind, Reply, Request};

/// What to tell a user whose keys landed in different Redis Cluster slots.
/// Adapters put it in the message of every [`ErrorKind::CrossSlot`] error (see
/// [`error_message`]), and [`Error::Rejected`](crate::Error::Rejected) shows it
/// once.
pub const CROSS_SLOT_HINT: &str = "in a Redis Cluster every resource of one lock must share \
     a hash tag, e.g. `{order42}:invoice` and `{order42}:ledger`";

/// The command a [`Call`] sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// `SET <key> <value> NX PX <ttl ms>`, for a plain acquire.
    Set,
    /// `EVALSHA <sha1> <numkeys> <keys>... <value> <ttl ms> <extra args>...`.
    EvalSha,
    /// `EVAL <text> <numkeys> ...`, the same arguments as `EVALSHA`.
    Eval,
}

impl Command {
    /// The command's name, as sent.
    pub fn name(self) -> &'static str {
        match self {
            Command::Set => "SET",
            Command::EvalSha => "EVALSHA",
            Command::Eval => "EVAL",
        }
    }
}

/// One argument of a [`Call`], borrowed from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// A string (a key, the value, a script's SHA-1 or text, `NX`, ...).
    Str(&'a str),
    /// A number (`numkeys`, the TTL in milliseconds), sent in decimal.
    Int(u64),
}

/// One command to send for a request: its name and its arguments. Build it
/// with [`Call::acquire`] or [`Call::script`]; it allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    command: Command,
    request: Request<'a>,
    /// The key of a plain `SET`.
    set_key: &'a str,
}

impl<'a> Call<'a> {
    /// The first command of an acquire: a plain `SET NX PX` when
    /// [`Request::plain_set_nx`] allows it, the script by `EVALSHA` otherwise.
    pub fn acquire(request: &Request<'a>) -> Self {
        match request.plain_set_nx() {
            Some(key) => Call {
                command: Command::Set,
                request: *request,
                set_key: key,
            },
            None => Call::script(request),
        }
    }

    /// The request's script by `EVALSHA`: the first command of an extend, a
    /// release, a fence (and of an acquire that may not be a plain `SET`).
    pub fn script(request: &Request<'a>) -> Self {
        Call {
            command: Command::EvalSha,
            request: *request,
            set_key: "",
        }
    }

    /// The command.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The command's name, as sent.
    pub fn name(&self) -> &'static str {
        self.command.name()
    }

    /// The call to send next after the node answered this one with the error
    /// `code`, if there is one: `EVAL` with the script's text after a
    /// `NOSCRIPT` to an `EVALSHA`. The adapter sends it once, and its reply
    /// or error is the request's.
    pub fn fallback(&self, code: &str) -> Option<Call<'a>> {
        (self.command == Command::EvalSha && is_noscript(code)).then_some(Call {
            command: Command::Eval,
            ..*self
        })
    }

    /// The arguments after the command's name, in order.
    pub fn args(&self) -> Args<'a> {
        Args {
            call: *self,
            next: 0,
            end: self.arg_count(),
        }
    }

    /// How many arguments follow the command's name.
    pub fn arg_count(&self) -> usize {
        match self.command {
            Command::Set => 5,
            Command::EvalSha | Command::Eval if self.value_only() => 3 + self.request.key_count(),
            Command::EvalSha | Command::Eval => {
                4 + self.request.key_count() + self.request.extra_args().len()
            }
        }
    }

    /// Whether the script is sent the value alone (no TTL, no extra
    /// arguments): see [`Script::takes_value_only`](crate::Script::takes_value_only).
    fn value_only(&self) -> bool {
        self.request.script().takes_value_only()
    }

    /// About how many bytes the name and the arguments take (20 for each
    /// number), to size a command buffer once.
    pub fn byte_len_hint(&self) -> usize {
        const INT: usize = 20;
        let request = &self.request;
        let total = |strings: &[String]| strings.iter().map(String::len).sum::<usize>();
        let args = match self.command {
            Command::Set => self.set_key.len() + "NXPX".len() + INT,
            Command::EvalSha | Command::Eval => {
                let keys = self.script_arg().len()
                    + INT
                    + total(request.resources())
                    + total(request.extra_keys());
                if self.value_only() {
                    keys
                } else {
                    keys + INT + total(request.extra_args())
                }
            }
        };
        self.name().len() + request.value().len() + args
    }

    /// Hands each argument after the command's name to `write`, in order:
    /// what [`args`](Self::args) yields, for less work per argument.
    pub fn for_each_arg(&self, mut write: impl FnMut(Arg<'a>)) {
        let request = &self.request;
        if self.command == Command::Set {
            write(Arg::Str(self.set_key));
            write(Arg::Str(request.value()));
            write(Arg::Str("NX"));
            write(Arg::Str("PX"));
            write(Arg::Int(request.ttl_millis()));
            return;
        }
        write(Arg::Str(self.script_arg()));
        write(Arg::Int(
            u64::try_from(request.key_count()).unwrap_or(u64::MAX),
        ));
        for key in request.resources().iter().chain(request.extra_keys()) {
            write(Arg::Str(key));
        }
        write(Arg::Str(request.value()));
        if self.value_only() {
            return;
        }
        write(Arg::Int(request.ttl_millis()));
        for arg in request.extra_args() {
            write(Arg::Str(arg));
        }
    }

    /// The script's SHA-1 for `EVALSHA`, its text for `EVAL`.
    fn script_arg(&self) -> &'a str {
        match self.command {
            Command::Eval => self.request.script().text(),
            _ => self.request.script().sha1(),
        }
    }

    /// The node's reply to this call, or an [`ErrorKind::Protocol`] error for
    /// a reply the command cannot give (see the [module docs](self)).
    pub fn reply(&self, reply: RawReply<'_>) -> Result<Reply, BackendError> {
        match self.command {
            Command::Set => set_nx_reply(reply),
            Command::EvalSha | Command::Eval => script_reply(reply),
        }
    }

    fn arg(&self, index: usize) -> Option<Arg<'a>> {
        let request = &self.request;
        if self.command == Command::Set {
            return match index {
                0 => Some(Arg::Str(self.set_key)),
                1 => Some(Arg::Str(request.value())),
                2 => Some(Arg::Str("NX")),
                3 => Some(Arg::Str("PX")),
                4 => Some(Arg::Int(request.ttl_millis())),
                _ => None,
            };
        }
        let resources = request.resources().len();
        let keys = request.key_count();
        let as_str = |s: &'a String| Arg::Str(s.as_str());
        match index {
            0 => Some(Arg::Str(self.script_arg())),
            1 => Some(Arg::Int(u64::try_from(keys).unwrap_or(u64::MAX))),
            i if i < 2 + resources => request.resources().get(i - 2).map(as_str),
            i if i < 2 + keys => request.extra_keys().get(i - 2 - resources).map(as_str),
            i if i == 2 + keys => Some(Arg::Str(request.value())),
            _ if self.value_only() => None,
            i if i == 3 + keys => Some(Arg::Int(request.ttl_millis())),
            i => request.extra_args().get(i - 4 - keys).map(as_str),
        }
    }
}

/// The arguments of a [`Call`]; see [`Call::args`].
#[derive(Clone, Debug)]
pub struct Args<'a> {
    call: Call<'a>,
    next: usize,
    end: usize,
}

impl<'a> Iterator for Args<'a> {
    type Item = Arg<'a>;

    fn next(&mut self) -> Option<Arg<'a>> {
        if self.next >= self.end {
            return None;
        }
        let arg = self.call.arg(self.next);
        self.next += 1;
        arg
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end.saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Args<'_> {}

/// A reply as the client decoded it, in the shapes a [`Call`] can be answered
/// with. An adapter converts its client's value into one and hands it to
/// [`Call::reply`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum RawReply<'a> {
    /// An integer.
    Integer(i64),
    /// An array of exactly two integers. (Any other array is [`Other`](Self::Other).)
    Pair(i64, i64),
    /// The status `OK`.
    Okay,
    /// A nil (null) reply.
    Nil,
    /// Anything else; its `Debug` form names it in the error (cut short).
    Other(&'a dyn fmt::Debug),
}

/// The reply to `SET key value NX PX ttl`: `OK` is one key applied, nil none.
pub fn set_nx_reply(reply: RawReply<'_>) -> Result<Reply, BackendError> {
    match reply {
        RawReply::Okay => Ok(Reply::applied(1)),
        RawReply::Nil => Ok(Reply::applied(0)),
        other => Err(unexpected("SET NX must reply OK or nil", other)),
    }
}

/// A script's reply: the number of keys it applied to, or, for the fenced
/// acquire, `[applied, fence]`.
pub fn script_reply(reply: RawReply<'_>) -> Result<Reply, BackendError> {
    match reply {
        RawReply::Integer(n) => Ok(Reply::from_script_integer(n)),
        RawReply::Pair(applied, fence) => Ok(Reply::from_script_pair(applied, fence)),
        other => Err(unexpected(
            "the script must reply with an integer (or two, for a fenced acquire)",
            other,
        )),
    }
}

/// How much of an unexpected reply an error message shows.
const REPLY_SHOWN: usize = 80;

fn unexpected(expected: &str, reply: RawReply<'_>) -> BackendError {
    let mut got = match reply {
        RawReply::Integer(n) => format!("the integer {n}"),
        RawReply::Pair(a, b) => format!("the array [{a}, {b}]"),
        RawReply::Okay => "OK".to_owned(),
        RawReply::Nil => "nil".to_owned(),
        RawReply::Other(value) => format!("{value:?}"),
    };
    if let Some((cut, _)) = got.char_indices().nth(REPLY_SHOWN) {
        got.truncate(cut);
        got.push_str("...");
    }
    BackendError::new(ErrorKind::Protocol, format!("{expected}, got {got}"))
}

/// Splits a server error line (`CODE detail...`, with or without the leading
/// `-` of the wire format) into its code and its detail. `None` when the line
/// does not start with a code: two or more upper-case letters, digits or
/// underscores.
pub fn split_error_line(line: &str) -> Option<(&str, &str)> {
    let line = line.strip_prefix('-').unwrap_or(line);
    let (code, detail) = line.split_once(' ').unwrap_or((line, ""));
    let is_code = code.len() >= 2
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    is_code.then_some((code, detail.trim_end()))
}

/// The core's kind for a server error, from its code (`CROSSSLOT`, `ERR`, ...)
/// and its detail (the rest of the line). See the table in the
/// [module docs](self#server-error-codes).
pub fn server_error_kind(code: &str, detail: &str) -> ErrorKind {
    match code {
        "CROSSSLOT" => ErrorKind::CrossSlot,
        "NOAUTH" | "WRONGPASS" | "NOPERM" => ErrorKind::Auth,
        "WRONGTYPE" => ErrorKind::Script,
        "BUSY" | "LOADING" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY" | "OOM"
        | "MISCONF" | "NOREPLICAS" => ErrorKind::Busy,
        // The only commands sent are scripts and SET: a server that does not
        // know one of them will not learn it on a retry.
        "ERR" if starts_with_ignore_case(detail, "unknown command") => ErrorKind::Unsupported,
        // A generic error that names the script (a Lua runtime or compile
        // error, `redis.call` failing inside it) is the script's fault.
        "ERR" if contains_ignore_case(detail, "script") => ErrorKind::Script,
        _ => ErrorKind::Other,
    }
}

/// Whether the server refused a script by SHA-1 because it does not have it:
/// the code that makes [`Call::fallback`] resend by `EVAL`.
pub fn is_noscript(code: &str) -> bool {
    code == "NOSCRIPT"
}

/// Whether the code is a Redis Cluster redirect (`MOVED`, `ASK`). A client
/// that reports one did not follow it: a standalone connection to a cluster
/// node, or a cluster client that gave up on the slot.
pub fn is_redirect(code: &str) -> bool {
    matches!(code, "MOVED" | "ASK")
}

/// The message of a [`BackendError`] of `kind` for the client's `error`: the
/// error's text, and for [`ErrorKind::CrossSlot`] the [`CROSS_SLOT_HINT`].
pub fn error_message(kind: ErrorKind, error: &dyn fmt::Display) -> String {
    let mut message = error.to_string();
    if kind == ErrorKind::CrossSlot {
        let _ = write!(message, "; {CROSS_SLOT_HINT}");
    }
    message
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn contains_ignore_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests;
