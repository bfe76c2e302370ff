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
mod tests {
    use super::*;
    use crate::scripts::{Script, Scripts};
    use std::time::Duration;

    /// Every server error code either adapter has met, as real servers send it.
    #[test]
    fn every_server_error_code() {
        use ErrorKind::*;
        let table: &[(&str, ErrorKind)] = &[
            ("-CROSSSLOT Keys in request don't hash to the same slot\r\n", CrossSlot),
            ("CROSSSLOT", CrossSlot),
            ("NOAUTH Authentication required.", Auth),
            ("WRONGPASS invalid username-password pair or user is disabled.", Auth),
            ("NOPERM this user has no permissions to run the 'evalsha' command", Auth),
            ("WRONGTYPE Operation against a key holding the wrong kind of value", Script),
            ("WRONGTYPE Operation against a key holding the wrong kind of value script: 1234, on @user_script:2.", Script),
            ("ERR Error running script (call to f_1234): @user_script:1: oops", Script),
            ("ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: 1f0e, on @user_script:1.", Script),
            ("ERR Error compiling script (new function): user_script:1: unexpected symbol", Script),
            ("ERR user_script:1: Unknown Redis command called from script script: 1f0e, on @user_script:1.", Script),
            ("ERR unknown command 'EVALSHA', with args beginning with: ", Unsupported),
            ("ERR unknown command 'FOO'", Unsupported),
            ("ERR Unknown Command 'SET'", Unsupported),
            ("ERR syntax error", Other),
            ("ERR", Other),
            ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", Busy),
            ("LOADING Redis is loading the dataset in memory", Busy),
            ("TRYAGAIN Multiple keys request during rehashing of slot", Busy),
            ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", Busy),
            ("CLUSTERDOWN The cluster is down", Busy),
            ("CLUSTERDOWN Hash slot not served", Busy),
            ("READONLY You can't write against a read only replica.", Busy),
            ("OOM command not allowed when used memory > 'maxmemory'.", Busy),
            ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.", Busy),
            ("NOREPLICAS Not enough good replicas to write.", Busy),
            ("MOVED 3999 127.0.0.1:6381", Other),
            ("ASK 3999 127.0.0.1:6381", Other),
            ("NOSCRIPT No matching script. Please use EVAL.", Other),
            ("EXECABORT Transaction discarded because of previous errors.", Other),
            ("NOTBUSY No scripts in execution right now.", Other),
        ];
        for &(line, kind) in table {
            let (code, detail) = split_error_line(line).unwrap_or_else(|| panic!("{line:?}"));
            assert_eq!(server_error_kind(code, detail), kind, "{line}");
            assert_eq!(is_noscript(code), code == "NOSCRIPT", "{line}");
            assert_eq!(is_redirect(code), matches!(code, "MOVED" | "ASK"), "{line}");
        }
    }

    #[test]
    fn error_lines_split_into_code_and_detail() {
        assert_eq!(
            split_error_line("-NOSCRIPT No matching script.\r\n"),
            Some(("NOSCRIPT", "No matching script."))
        );
        assert_eq!(split_error_line("ERR"), Some(("ERR", "")));
        for not_a_code in ["", "-", "E", "Failed to route command.", "Os { code: 111 }"] {
            assert_eq!(split_error_line(not_a_code), None, "{not_a_code:?}");
        }
    }

    #[test]
    fn cross_slot_messages_carry_the_hint_once() {
        let message = error_message(ErrorKind::CrossSlot, &"CROSSSLOT Keys in request");
        assert_eq!(message.matches(CROSS_SLOT_HINT).count(), 1, "{message}");
        assert_eq!(error_message(ErrorKind::Busy, &"BUSY x"), "BUSY x");
    }

    fn strings(call: &Call<'_>) -> Vec<String> {
        call.args()
            .map(|arg| match arg {
                Arg::Str(s) => s.to_owned(),
                Arg::Int(n) => n.to_string(),
            })
            .collect()
    }

    #[test]
    fn script_call_layout() {
        let resources = vec!["a".to_owned(), "{t}b".to_owned()];
        let script = Script::new("return 1");
        let request = Request::new(&resources, "v", Duration::from_millis(1500), &script);
        let call = Call::acquire(&request);
        assert_eq!(call.name(), "EVALSHA");
        assert_eq!(
            strings(&call),
            [script.sha1(), "2", "a", "{t}b", "v", "1500"]
        );
        assert_eq!(call.args().len(), call.arg_count());
        // The name, the SHA-1, the keys and the value, and 20 per number.
        assert_eq!(call.byte_len_hint(), 7 + 40 + 1 + 4 + 1 + 2 * 20);
    }

    #[test]
    fn for_each_arg_writes_what_args_yields_and_the_hint_counts_it() {
        let resources = vec!["r1".to_owned(), "resource-2".to_owned()];
        let fences = vec!["redlock:fence:{r1}".to_owned(), "f2".to_owned()];
        let extra = vec!["42".to_owned(), "redlock:released:{r1}".to_owned()];
        let script = Script::new("return 1");
        let one = vec!["r".to_owned()];
        let scripts = crate::scripts::Scripts::default();
        let set = Request::new(&one, "value", Duration::from_millis(250), scripts.acquire())
            .with_plain_set_nx(true);
        let full = Request::new(&resources, "v", Duration::from_millis(7), &script)
            .with_extra_keys(&fences)
            .with_extra_args(&extra);
        let bare = Request::new(&resources, "v", Duration::from_millis(7), &script);
        let sha = Call::script(&full);
        let eval = sha.fallback("NOSCRIPT").expect("EVAL after NOSCRIPT");
        // A built-in release: the channels stay in the request, for backends
        // that announce in Rust, and off the wire, as does the TTL.
        let notify = Request::new(&resources, "v", Duration::ZERO, scripts.release_notify())
            .with_extra_args(&extra);
        let release = Call::script(&notify);
        assert_eq!(
            strings(&release),
            [
                scripts.release_notify().sha1(),
                "2",
                "r1",
                "resource-2",
                "v"
            ]
        );
        let release_eval = release.fallback("NOSCRIPT").expect("EVAL after NOSCRIPT");
        let calls = [
            Call::acquire(&set),
            sha,
            eval,
            Call::script(&bare),
            release,
            release_eval,
        ];
        assert_eq!(calls[0].command(), Command::Set);
        for call in calls {
            let mut written = Vec::new();
            call.for_each_arg(|arg| written.push(arg));
            assert_eq!(written.len(), call.arg_count(), "{}", call.name());
            let yielded: Vec<Arg<'_>> = call.args().collect();
            assert_eq!(written, yielded, "{}", call.name());
            let counted = yielded.iter().fold(call.name().len(), |sum, arg| {
                sum + match arg {
                    Arg::Str(s) => s.len(),
                    Arg::Int(_) => 20,
                }
            });
            assert_eq!(call.byte_len_hint(), counted, "{}", call.name());
        }
    }

    #[test]
    fn extra_keys_and_args_follow_and_eval_sends_the_text() {
        let resources = vec!["r".to_owned()];
        let fences = vec!["redlock:fence:{r}".to_owned()];
        let token = vec!["42".to_owned()];
        let script = Script::new("return 1");
        let request = Request::new(&resources, "v", Duration::from_millis(7), &script)
            .with_extra_keys(&fences)
            .with_extra_args(&token);
        let eval = Call::script(&request)
            .fallback("NOSCRIPT")
            .expect("EVAL after NOSCRIPT");
        assert_eq!(eval.name(), "EVAL");
        assert_eq!(
            strings(&eval),
            ["return 1", "2", "r", "redlock:fence:{r}", "v", "7", "42"]
        );
        assert_eq!(eval.args().len(), 7);
        // Only once, and only after NOSCRIPT.
        assert!(eval.fallback("NOSCRIPT").is_none());
        assert!(Call::script(&request).fallback("ERR").is_none());
    }

    #[test]
    fn plain_acquire_is_a_set_nx_and_each_command_reads_its_replies() {
        let scripts = Scripts::default();
        let resources = vec!["r".to_owned()];
        let request = Request::new(
            &resources,
            "v",
            Duration::from_millis(250),
            scripts.acquire(),
        )
        .with_plain_set_nx(true);
        let call = Call::acquire(&request);
        assert_eq!(call.command(), Command::Set);
        assert_eq!(strings(&call), ["r", "v", "NX", "PX", "250"]);
        assert_eq!(call.args().len(), 5);
        assert!(call.fallback("NOSCRIPT").is_none());
        // Other operations run the script whatever the request allows.
        assert_eq!(Call::script(&request).command(), Command::EvalSha);

        // Each command reads its own replies.
        let script = Call::script(&request);
        let set = call;

        assert_eq!(
            script.reply(RawReply::Integer(3)).ok(),
            Some(Reply::applied(3))
        );
        assert_eq!(
            script.reply(RawReply::Integer(-1)).ok(),
            Some(Reply::applied(0))
        );
        assert_eq!(
            script.reply(RawReply::Pair(2, 9)).ok(),
            Some(Reply::applied(2).with_fence(9))
        );
        assert_eq!(set.reply(RawReply::Okay).ok(), Some(Reply::applied(1)));
        assert_eq!(set.reply(RawReply::Nil).ok(), Some(Reply::applied(0)));

        let long = "x".repeat(1000);
        for (call, bad) in [
            (script, RawReply::Nil),
            (script, RawReply::Okay),
            (script, RawReply::Other(&"1")),
            (script, RawReply::Other(&[1])),
            (set, RawReply::Integer(1)),
            (set, RawReply::Pair(1, 1)),
            (set, RawReply::Other(&long)),
        ] {
            let err = call.reply(bad).expect_err("not a valid reply");
            assert_eq!(err.kind(), ErrorKind::Protocol);
            assert!(err.message().len() < 200, "cut short: {err}");
        }
    }
}
