//! The node list (`--nodes` / `REDLOCK_NODES`): checking it, connecting to it,
//! and naming a node without its password.

use redlock::{RedisBackend, Redlock, Settings};

use crate::fail::Failure;

/// Connects one [`RedisBackend`] per URL and builds a [`Redlock`] over them
/// with `settings`.
///
/// Connections are lazy (a node that is down fails its own votes, not the
/// start), so this fails only on bad input: no URL, an empty or repeated
/// entry, a URL the Redis client cannot parse.
pub async fn connect(urls: &[String], settings: Settings) -> Result<Redlock, Failure> {
    check(urls)?;
    let mut backends = Vec::with_capacity(urls.len());
    for url in urls {
        let backend = RedisBackend::connect(url.trim()).await.map_err(|error| {
            Failure::usage(format!(
                "node URL {} is not valid ({}); write redis://[[user]:password@]host:port[/db]",
                redact(url),
                scrub(error.message(), url)
            ))
        })?;
        backends.push(backend);
    }
    Redlock::builder(backends)
        .settings(settings)
        .build()
        .map_err(|error| Failure::usage(error.to_string()))
}

/// The list must name at least one node, none of them empty or twice.
fn check(urls: &[String]) -> Result<(), Failure> {
    if urls.is_empty() {
        return Err(Failure::usage(
            "no nodes given; pass --nodes redis://host:port,redis://host:port,... \
             or set REDLOCK_NODES (one URL per independent Redis node)",
        ));
    }
    for (index, url) in urls.iter().enumerate() {
        if url.trim().is_empty() {
            return Err(Failure::usage(format!(
                "node {} of --nodes is empty; remove the stray comma",
                index + 1
            )));
        }
        if urls[..index].iter().any(|u| u.trim() == url.trim()) {
            return Err(Failure::usage(format!(
                "node {} is listed twice; Redlock needs independent nodes, list each once",
                redact(url)
            )));
        }
    }
    Ok(())
}

/// `url` with the password (or a user-info without a `:`) replaced by `***`,
/// for messages: `redis://alice:***@host:6379`.
pub fn redact(url: &str) -> String {
    match redact_parts(url) {
        Some((head, userinfo, tail)) => {
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{head}{shown}{tail}")
        }
        None => url.trim().to_owned(),
    }
}

/// `url` split around its user-info, `(before, userinfo, from the @ on)`, or
/// `None` when it has none. Text that is not a `scheme://` URL is taken to
/// have user-info up to its last `@`.
fn redact_parts(url: &str) -> Option<(&str, &str, &str)> {
    let url = url.trim();
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority_len = if start == 0 {
        rest.len()
    } else {
        rest.find(['/', '?', '#']).unwrap_or(rest.len())
    };
    let at = rest[..authority_len].rfind('@')?;
    Some((&url[..start], &rest[..at], &rest[at..]))
}

/// `message` with the password of `url` (if any) replaced by `***`, in case
/// the client quoted the URL back.
fn scrub(message: &str, url: &str) -> String {
    let secret = redact_parts(url).and_then(|(_, userinfo, _)| {
        let secret = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        (!secret.is_empty()).then_some(secret)
    });
    match secret {
        Some(secret) => message.replace(secret, "***"),
        None => message.to_owned(),
    }
}

/// `text` with the password of every URL in `urls` replaced by `***`: a
/// last guard on what the status and the doctor print, whose node names and
/// server messages should not carry one anyway.
pub fn scrub_all(text: &str, urls: &[String]) -> String {
    urls.iter()
        .fold(text.to_owned(), |text, url| scrub(&text, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://:hunter2@127.0.0.1:7001/3"),
            "redis://:***@127.0.0.1:7001/3"
        );
        assert_eq!(
            redact("rediss://alice:hunter2@h:6379"),
            "rediss://alice:***@h:6379"
        );
        assert_eq!(redact("redis://hunter2@h"), "redis://***@h");
        assert_eq!(redact("redis://h:6379/0?x=a@b"), "redis://h:6379/0?x=a@b");
        assert_eq!(redact("redis://a:p@ss@h"), "redis://a:***@h");
        assert_eq!(redact("h:p@x"), "h:***@x");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(
            scrub("bad redis://:hunter2@h", "redis://:hunter2@h"),
            "bad redis://:***@h"
        );
        assert_eq!(scrub("bad", "redis://h"), "bad");
        let urls = [
            "redis://:pw1@a:1".to_owned(),
            "redis://u:pw2@b:1".to_owned(),
        ];
        assert_eq!(scrub_all("pw1 and pw2 x", &urls), "*** and *** x");
    }

    #[test]
    fn bad_lists_are_usage_errors() {
        let list = |urls: &[&str]| check(&urls.iter().map(|u| u.to_string()).collect::<Vec<_>>());
        assert!(list(&[]).is_err());
        assert!(list(&["redis://a:1", ""]).is_err());
        assert!(list(&["redis://a:1", " redis://a:1"]).is_err());
        assert!(list(&["redis://a:1", "redis://a:2"]).is_ok());
        let twice = list(&["redis://:pw@a:1", "redis://:pw@a:1"]).unwrap_err();
        assert!(!twice.to_string().contains("pw"), "{twice}");
    }
}
