//! TLS and ACL users for test nodes.
//!
//! A node started with [`NodeOptions::tls`](super::NodeOptions::tls) serves
//! clients over TLS with a server certificate signed by [`TestCa::shared`],
//! a certificate authority made (with `rcgen`, in memory) once per test
//! process. Clients trust that CA, and nothing else, through
//! [`TestCa::cert_pem`] or [`TestCa::cert_der`]: never the system's store.
//! The node's certificate names `127.0.0.1` and `localhost`, and the node
//! asks clients for no certificate (`tls-auth-clients no`).
//!
//! A node started with [`NodeOptions::acl_user`](super::NodeOptions::acl_user)
//! has an ACL user, [`AclUser`], whose name and password its
//! [`url`](super::RedisNode::url) carries.

use std::fmt;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::LaunchError;

/// The file names a TLS node's certificates get in its directory.
pub(super) const CA_FILE: &str = "ca.crt";
pub(super) const CERT_FILE: &str = "server.crt";
pub(super) const KEY_FILE: &str = "server.key";

/// A certificate authority made for tests: a fresh key and a self-signed CA
/// certificate, in memory. [`TestCa::shared`] signs the server certificate
/// of every TLS node ([`NodeOptions::tls`](super::NodeOptions::tls)); clients
/// trust it through [`cert_pem`](Self::cert_pem) or
/// [`cert_der`](Self::cert_der), never through the system's store.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    cert_pem: String,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA, with its own key: certificates it signs are not trusted by
    /// clients that trust [`shared`](Self::shared). Handy to check that a
    /// client really verifies the server (see [`cert_pem`](Self::cert_pem)).
    pub fn generate() -> Result<TestCa, LaunchError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "redlock-testkit test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(tls_error("generate the test CA's key"))?;
        let issuer = CertifiedIssuer::self_signed(params, key)
            .map_err(tls_error("sign the test CA's certificate"))?;
        let cert_pem = issuer.pem();
        Ok(TestCa { issuer, cert_pem })
    }

    /// The CA every TLS node of this process uses, made on first use.
    pub fn shared() -> Result<&'static TestCa, LaunchError> {
        static SHARED: OnceLock<Result<TestCa, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| TestCa::generate().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|detail| LaunchError::Tls(detail.clone()))
    }

    /// The CA certificate, PEM-encoded: what a client adds to its roots
    /// (redis-rs's `TlsCertificates::root_cert`, for instance).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER-encoded (for a rustls `RootCertStore`).
    pub fn cert_der(&self) -> &[u8] {
        self.issuer.der()
    }

    /// A server certificate for `127.0.0.1` and `localhost`, signed by this
    /// CA, and its private key, both PEM-encoded.
    pub fn server_certificate(&self) -> Result<(String, String), LaunchError> {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(tls_error("describe the server certificate"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "redlock-testkit node");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(tls_error("generate a server key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(tls_error("sign a server certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes the CA certificate and a fresh server certificate and key into
    /// `dir`, under the names the node's arguments use.
    pub(super) fn write_node_files(&self, dir: &Path) -> Result<(), LaunchError> {
        let (cert, key) = self.server_certificate()?;
        for (name, text) in [
            (CA_FILE, self.cert_pem.as_str()),
            (CERT_FILE, cert.as_str()),
            (KEY_FILE, key.as_str()),
        ] {
            let path = dir.join(name);
            fs::write(&path, text)
                .map_err(|e| LaunchError::io(format!("write {}", path.display()), e))?;
        }
        Ok(())
    }
}

fn tls_error(action: &'static str) -> impl Fn(rcgen::Error) -> LaunchError {
    move |e| LaunchError::Tls(format!("could not {action}: {e}"))
}

/// An ACL user that a node creates at start, as the configuration line
/// `user NAME on >PASSWORD RULES...`. The node's [`url`](super::RedisNode::url)
/// then logs in as this user.
///
/// The name and the password may hold ASCII letters, digits, `-`, `_`, `.`
/// and `~` only (so that they need no quoting in a URL nor in the server's
/// configuration); starting a node with anything else fails with
/// [`LaunchError::InvalidArgument`].
#[derive(Clone, PartialEq, Eq)]
pub struct AclUser {
    /// The user name.
    pub name: String,
    /// Its password.
    pub password: String,
    /// Its ACL rules, as Redis's `ACL SETUSER` takes them. Default:
    /// [`AclUser::ALL`].
    pub rules: Vec<String>,
}

impl AclUser {
    /// Every key (`~*`), every channel (`&*`), every command (`+@all`).
    pub const ALL: &'static [&'static str] = &["~*", "&*", "+@all"];

    /// The least a lock client needs, on every key and channel: what the
    /// conformance suite over TLS ([`TlsFixture`](crate::fixture::TlsFixture))
    /// gives its user, so the suite checks that the list is enough.
    ///
    /// - `EVALSHA`, `EVAL` and `SET`: what the adapters send;
    /// - `GET`, `SET`, `DEL`, `PEXPIRE`: what the scripts call (Redis checks
    ///   a script's calls against the user's rules too);
    /// - `PUBLISH`, `SPUBLISH`, `PUBSUB NUMSUB`, `PUBSUB SHARDNUMSUB`: the
    ///   release script's notice (without them, it publishes nothing and
    ///   waiters fall back to their retry delay);
    /// - `SUBSCRIBE`, `UNSUBSCRIBE`, `SSUBSCRIBE`, `SUNSUBSCRIBE`: the
    ///   wake-on-release subscription;
    /// - `INFO`: restart quarantine (`INFO server`);
    /// - `HELLO`, `AUTH`, `PING`: the clients' connection set-up (redis-rs
    ///   also sends `CLIENT SETINFO`, unknown before Redis 7.2 and not in
    ///   this list, and goes on when it is refused).
    pub const LOCK: &'static [&'static str] = &[
        "~*",
        "&*",
        "-@all",
        "+evalsha",
        "+eval",
        "+set",
        "+get",
        "+del",
        "+pexpire",
        "+publish",
        "+spublish",
        "+pubsub|numsub",
        "+pubsub|shardnumsub",
        "+subscribe",
        "+unsubscribe",
        "+ssubscribe",
        "+sunsubscribe",
        "+info",
        "+hello",
        "+auth",
        "+ping",
    ];

    /// A user called `name` with `password` and the rules [`AclUser::ALL`].
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> AclUser {
        AclUser {
            name: name.into(),
            password: password.into(),
            rules: Self::ALL.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// The same user with `rules` instead.
    pub fn with_rules<I, S>(mut self, rules: I) -> AclUser
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rules = rules.into_iter().map(Into::into).collect();
        self
    }

    /// The `redis-server` arguments that create it.
    pub(super) fn args(&self) -> Result<Vec<String>, LaunchError> {
        check_credential("ACL user name", &self.name)?;
        check_credential("ACL user password", &self.password)?;
        if let Some(rule) = self.rules.iter().find(|r| {
            r.is_empty()
                || r.chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\'')
        }) {
            return Err(LaunchError::InvalidArgument(format!(
                "the ACL rule {rule:?} of user {} is empty or holds spaces or quotes",
                self.name
            )));
        }
        let mut args = vec![
            "--user".to_owned(),
            self.name.clone(),
            "on".to_owned(),
            format!(">{}", self.password),
        ];
        args.extend(self.rules.iter().cloned());
        Ok(args)
    }
}

impl fmt::Debug for AclUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("rules", &self.rules)
            .finish()
    }
}

/// Only characters that need no quoting in a URL's user part nor in
/// `redis-server`'s configuration.
pub(super) fn check_credential(what: &str, value: &str) -> Result<(), LaunchError> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    if value.is_empty() || !value.chars().all(fine) {
        return Err(LaunchError::InvalidArgument(format!(
            "{what} must be non-empty and hold only ASCII letters, digits, '-', '_', '.' and '~'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_ca_signs_server_certificates() {
        let ca = TestCa::shared().expect("a CA");
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!ca.cert_der().is_empty());
        let (cert, key) = ca.server_certificate().expect("a server certificate");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(key.contains("PRIVATE KEY"), "{key}");
        // The same CA every time; another one is another key.
        assert_eq!(TestCa::shared().expect("a CA").cert_pem(), ca.cert_pem());
        assert_ne!(TestCa::generate().expect("a CA").cert_pem(), ca.cert_pem());
    }

    #[test]
    fn acl_users_become_arguments_without_showing_their_password() {
        let user = AclUser::new("locker", "pa55-word");
        assert_eq!(
            user.args().expect("valid"),
            ["--user", "locker", "on", ">pa55-word", "~*", "&*", "+@all"]
        );
        assert!(!format!("{user:?}").contains("pa55-word"));
        for bad in [
            AclUser::new("", "p"),
            AclUser::new("a b", "p"),
            AclUser::new("a", "p@ss"),
            AclUser::new("a", "p").with_rules(["+@all", "~* &*"]),
        ] {
            assert!(
                matches!(bad.args(), Err(LaunchError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }
}
