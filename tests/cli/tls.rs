//! Issue 19: alerts over TLS trust the platform's store (here `SSL_CERT_FILE`, set in the
//! cronwarden process's environment only: the host's store is never touched) and a channel's
//! `ca_file`; an untrusted certificate is said in plain words and the alert is spooled. The
//! certificate authorities are made by the test (rcgen), the servers are on loopback.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::Table;
use super::alert::{Hook, Smtp, SmtpTls, spooled};

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(p, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server's TLS configuration with a certificate for `names`, signed by this CA.
    fn server(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let p = CertificateParams::new(names).expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = p.signed_by(&key, &self.issuer).expect("server certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("server config");
        Arc::new(config)
    }
}

/// The test's PKI written beside its table: `ca.pem` (the CA that signs the servers'
/// certificates) and `other.pem` (a CA that signed nothing here).
fn write_cas(t: &Table, ca: &Ca) -> (String, String) {
    let other = Ca::new("Unrelated Root CA");
    let a = t.dir.write("ca.pem", &ca.pem());
    let b = t.dir.write("other.pem", &other.pem());
    (a.display().to_string(), b.display().to_string())
}

/// `cronwarden run JOB` with `SSL_CERT_FILE` as the platform's store (and no
/// `SSL_CERT_DIR`); its exit code.
fn run_with_store(t: &Table, job: &str, cert_file: &str) -> i32 {
    let out = t
        .cmd(&["run", job])
        .env("SSL_CERT_FILE", cert_file)
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("cronwarden runs");
    out.status.code().unwrap_or(-1)
}

#[test]
fn email_over_starttls_and_smtps_trusts_ssl_cert_file_and_ca_file() {
    let ca = Ca::new("Test Root CA");
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let starttls = Smtp::start_with(0, SmtpTls::StartTls(Arc::clone(&server)));
    let smtps = Smtp::start_with(0, SmtpTls::Wrapper(server));
    let t = Table::new(
        "tls-mail",
        &format!(
            r#"
[alerts.system]
type = "email"
smtp_url = "smtp://127.0.0.1:{p}?tls=required"
from = "cronwarden@example.com"
to = ["ops@example.com"]

[alerts.private]
type = "email"
smtp_url = "smtp://127.0.0.1:{p}"
from = "cronwarden@example.com"
to = ["ops@example.com"]
ca_file = "$DIR/ca.pem"

[alerts.wrapped]
type = "email"
smtp_url = "smtps://127.0.0.1:{q}"
from = "cronwarden@example.com"
to = ["ops@example.com"]
ca_file = "$DIR/ca.pem"

[jobs.backup]
schedule = "@daily"
command = ["/bin/false"]
alert = ["system", "private", "wrapped"]
"#,
            p = starttls.port,
            q = smtps.port
        ),
    );
    let (ca_pem, other_pem) = write_cas(&t, &ca);
    assert_eq!(t.run(&["check"]).0, 0, "{}", t.run(&["check"]).2);
    // The CA is in the platform's store: every channel delivers.
    assert_eq!(run_with_store(&t, "backup", &ca_pem), 1);
    // The alerts, not the notices that a channel is broken.
    let failed = |s: &Smtp| {
        s.messages()
            .iter()
            .filter(|m| m.contains("Subject: [cronwarden] FAILED backup"))
            .count()
    };
    assert_eq!(failed(&starttls), 2, "{}", t.log());
    assert_eq!(failed(&smtps), 1, "{}", t.log());
    assert!(spooled(&t).is_empty(), "{:?}", spooled(&t));
    // It is not: the channels with a ca_file still deliver; the other says why it did not,
    // in words, and keeps the alert.
    assert_eq!(run_with_store(&t, "backup", &other_pem), 1);
    assert_eq!(failed(&starttls), 3, "{}", t.log());
    assert_eq!(failed(&smtps), 2, "{}", t.log());
    let log = t.log();
    assert!(
        log.contains("TLS failed: the server's certificate is not trusted (its issuer is not in the system's CA bundle or ca_file)"),
        "{log}"
    );
    assert!(!log.contains("UnknownIssuer"), "{log}");
    let spool = spooled(&t);
    assert_eq!(spool.len(), 1, "{spool:?}");
    assert_eq!(spool[0].0, "system");
}

#[test]
fn https_webhooks_and_pings_trust_ssl_cert_file_and_ca_file_and_say_why_not() {
    let ca = Ca::new("Test Root CA");
    let hook = Hook::start_tls(200, ca.server(&["127.0.0.1"]));
    let elsewhere = Hook::start_tls(200, ca.server(&["mail.example.com"]));
    let t = Table::new(
        "tls-hook",
        &format!(
            r#"healthcheck_ca_file = "$DIR/ca.pem"

[alerts.system]
type = "webhook"
url = "https://127.0.0.1:{p}/system"

[alerts.private]
type = "webhook"
url = "https://127.0.0.1:{p}/private"
ca_file = "$DIR/ca.pem"

[alerts.misnamed]
type = "webhook"
url = "https://127.0.0.1:{e}/misnamed"
ca_file = "$DIR/ca.pem"

[jobs.backup]
schedule = "@daily"
command = ["/bin/false"]
alert = ["system", "private", "misnamed"]
healthcheck_url = "https://127.0.0.1:{p}/ping"
"#,
            p = hook.port,
            e = elsewhere.port
        ),
    );
    let (ca_pem, other_pem) = write_cas(&t, &ca);
    assert_eq!(run_with_store(&t, "backup", &ca_pem), 1);
    // The paths asked, but for the notices that a channel is broken (sent through the
    // channels that work).
    let paths = |h: &Hook| -> Vec<String> {
        h.requests()
            .into_iter()
            .filter(|r| !r.2.contains("channel-broken"))
            .map(|r| r.1)
            .collect()
    };
    let got = paths(&hook);
    // (`/bin/false` exits 1: the ping API's `/1`.)
    for want in ["/system", "/private", "/ping/start?rid=", "/ping/1?rid="] {
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "{want} not in {got:?}"
        );
    }
    // A certificate for another name: said so, nothing sent.
    assert!(paths(&elsewhere).is_empty());
    let log = t.log();
    assert!(
        log.contains("TLS failed: certificate is for mail.example.com, not 127.0.0.1"),
        "{log}"
    );
    // Without the CA in the store, only ca_file (and healthcheck_ca_file) trust it.
    assert_eq!(run_with_store(&t, "backup", &other_pem), 1);
    let got = paths(&hook);
    assert_eq!(got.iter().filter(|p| *p == "/system").count(), 1, "{got:?}");
    assert_eq!(
        got.iter().filter(|p| *p == "/private").count(),
        2,
        "{got:?}"
    );
    assert_eq!(
        got.iter().filter(|p| p.starts_with("/ping/1?rid=")).count(),
        2,
        "{got:?}"
    );
    let log = t.log();
    assert!(
        log.contains("POST https://127.0.0.1:")
            && log.contains("TLS failed: the server's certificate is not trusted"),
        "{log}"
    );
    assert!(
        !log.contains("UnknownIssuer") && !log.contains("NotValidForName"),
        "{log}"
    );
    let spool = spooled(&t);
    assert!(spool.iter().any(|(ch, _)| ch == "system"), "{spool:?}");
    assert!(!spool.iter().any(|(ch, _)| ch == "private"), "{spool:?}");
}

#[test]
fn check_refuses_a_ca_file_that_is_missing_a_directory_or_no_pem() {
    let t = Table::new(
        "tls-check",
        r#"healthcheck_ca_file = "$DIR"

[alerts.hook]
type = "webhook"
url = "https://127.0.0.1:9/hook"
ca_file = "$DIR/missing.pem"

[alerts.mail]
type = "email"
smtp_url = "smtp://127.0.0.1:9"
from = "cronwarden@example.com"
to = ["ops@example.com"]
ca_file = "$DIR/notes.txt"

[alerts.rel]
type = "webhook"
url = "https://127.0.0.1:9/hook"
ca_file = "ca.pem"
"#,
    );
    t.dir.write("notes.txt", "no certificate here\n");
    let (code, _, err) = t.run(&["check"]);
    assert_ne!(code, 0, "{err}");
    let table = t.path.display().to_string();
    let text = std::fs::read_to_string(&t.path).expect("table");
    let at = |needle: &str| {
        let n = text.lines().position(|l| l.contains(needle)).expect("line") + 1;
        format!("{table}:{n}:")
    };
    for want in [
        at("healthcheck_ca_file"),
        "healthcheck_ca_file: ".to_string(),
        "is not a regular file".to_string(),
        at("missing.pem"),
        "ca_file: cannot read ".to_string(),
        at("notes.txt"),
        "holds no certificate".to_string(),
        "ca_file: \"ca.pem\" must be an absolute path".to_string(),
    ] {
        assert!(err.contains(&want), "{want:?} not in\n{err}");
    }
}
