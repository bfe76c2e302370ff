//! Tests of the call layouts, the reply readers and the server error table.

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
