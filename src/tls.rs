//! TLS trust for every client the daemon opens: email (STARTTLS and smtps), webhooks,
//! healthcheck pings and fleet mode's PostgreSQL connections.
//!
//! The roots are the platform's trust store (the system CA bundle, or what `SSL_CERT_FILE`
//! and `SSL_CERT_DIR` name, as OpenSSL-based tools read them; `rustls-native-certs` does the
//! reading), plus the certificates of a channel's `ca_file`. Where the platform has no
//! bundle at all, Mozilla's roots (`webpki-roots`) stand in, as before this module. A
//! [`Trust`] is built once per distinct `ca_file` and kept until [`forget`] (a reload).
//!
//! Also here: [`explain`], rustls' certificate errors in plain words, for the log and the
//! spool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The trust every TLS client of the process uses for one `ca_file` (or none).
pub(crate) struct Trust {
    /// The roots as DER certificates (for lettre, which builds its own configuration from
    /// them); empty when only Mozilla's roots are used.
    roots: Vec<CertificateDer<'static>>,
    /// The platform had no CA bundle: Mozilla's roots stand in (plus `roots`).
    mozilla: bool,
    /// The rustls configuration for clients that take one (fleet mode).
    config: Arc<ClientConfig>,
    /// The HTTP client for webhooks and healthcheck pings (its own rustls configuration,
    /// built from the same roots once, on its first HTTPS request).
    agent: ureq::Agent,
}

/// The trusts built so far, by `ca_file`.
static CACHE: Mutex<BTreeMap<Option<PathBuf>, Arc<Trust>>> = Mutex::new(BTreeMap::new());

/// The trust for `ca_file` (an absolute path to a PEM bundle) on top of the platform's,
/// built on first use and kept.
pub(crate) fn trust(ca_file: Option<&Path>) -> Result<Arc<Trust>, String> {
    let key = ca_file.map(Path::to_path_buf);
    if let Some(t) = crate::sync::lock(&CACHE).get(&key) {
        return Ok(Arc::clone(t));
    }
    // Built outside the lock: reading a bundle takes a few milliseconds, and two threads
    // that race build the same thing.
    let t = Arc::new(Trust::build(ca_file)?);
    Ok(Arc::clone(
        crate::sync::lock(&CACHE).entry(key).or_insert(t),
    ))
}

/// Forgets every trust built so far: the next use reads the bundles again (after a reload,
/// which may follow `update-ca-certificates` or a new `ca_file`).
pub(crate) fn forget() {
    crate::sync::lock(&CACHE).clear();
}

/// The certificates of a PEM bundle; an error names the file and says what is wrong.
pub(crate) fn read_pem_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not a PEM bundle: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{shown} holds no certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    let mut store = RootCertStore::empty();
    for c in &certs {
        store
            .add(c.clone())
            .map_err(|e| format!("{shown}: a certificate rustls cannot use: {e}"))?;
    }
    Ok(certs)
}

impl Trust {
    fn build(ca_file: Option<&Path>) -> Result<Trust, String> {
        let mut roots = platform_roots();
        let mozilla = roots.is_empty();
        if let Some(f) = ca_file {
            roots.extend(read_pem_bundle(f)?);
        }
        let mut store = RootCertStore::empty();
        if mozilla {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for c in &roots {
            // Every one parses: platform_roots and read_pem_bundle kept only those.
            let _ = store.add(c.clone());
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS set-up: {e}"))?
                .with_root_certificates(store)
                .with_no_client_auth();
        let root_certs = if mozilla && roots.is_empty() {
            ureq::tls::RootCerts::WebPki
        } else {
            // With a ca_file on a host without a bundle, the ca_file alone: ureq takes one
            // kind of roots (nothing is trusted that the host did not say to trust).
            ureq::tls::RootCerts::Specific(Arc::new(
                roots
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                    .collect(),
            ))
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(root_certs)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Trust {
            roots,
            mozilla,
            config: Arc::new(config),
            agent,
        })
    }

    /// The rustls configuration (fleet mode's PostgreSQL connections).
    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// An HTTP request with this trust, which gives up after `timeout` (an HTTP error status
    /// is an answer, not an error).
    pub(crate) fn http(&self, timeout: Duration) -> HttpClient<'_> {
        HttpClient {
            agent: &self.agent,
            timeout,
        }
    }

    /// lettre's TLS parameters for a mail server with this trust.
    pub(crate) fn smtp(
        &self,
        host: &str,
    ) -> Result<lettre::transport::smtp::client::TlsParameters, String> {
        use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
        let store = if self.mozilla {
            CertificateStore::WebpkiRoots
        } else {
            CertificateStore::None
        };
        let mut b = TlsParameters::builder(host.to_string()).certificate_store(store);
        for c in &self.roots {
            let c = Certificate::from_der(c.to_vec())
                .map_err(|e| format!("TLS set-up for {host}: {e}"))?;
            b = b.add_root_certificate(c);
        }
        b.build_rustls()
            .map_err(|e| format!("TLS set-up for {host}: {e}"))
    }
}

/// Requests through a [`Trust`]'s HTTP client with one timeout.
pub(crate) struct HttpClient<'a> {
    agent: &'a ureq::Agent,
    timeout: Duration,
}

impl HttpClient<'_> {
    /// A POST request (the caller adds headers and sends the body).
    pub(crate) fn post(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.agent
            .post(url)
            .config()
            .timeout_global(Some(self.timeout))
            .build()
    }

    /// A GET request.
    pub(crate) fn get(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.agent
            .get(url)
            .config()
            .timeout_global(Some(self.timeout))
            .build()
    }
}

/// The platform's roots: the system bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set.
/// Certificates rustls cannot use are left out (as OpenSSL-based tools skip them).
fn platform_roots() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    found
        .certs
        .into_iter()
        .filter(|c| store.add(c.clone()).is_ok())
        .collect()
}

/// A TLS failure somewhere in an error's chain, in plain words; `None` when the error is
/// not about TLS certificates.
pub(crate) fn explain(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return describe(r);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return describe(r);
        }
        if let Some(u) = err.downcast_ref::<ureq::Error>() {
            match u {
                ureq::Error::Rustls(r) => return describe(r),
                ureq::Error::Io(io) => return explain(io),
                _ => {}
            }
        }
        cur = err.source();
    }
    None
}

/// A rustls error about the server's certificate, in plain words.
fn describe(e: &rustls::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    let untrusted = "the server's certificate is not trusted";
    Some(match c {
        CertificateError::UnknownIssuer => {
            format!("{untrusted} (its issuer is not in the system's CA bundle or ca_file)")
        }
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("the server's certificate expired on {}", date(*not_after))
        }
        CertificateError::Expired => "the server's certificate has expired".into(),
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the server's certificate is not valid before {} (is this host's clock right?)",
            date(*not_before)
        ),
        CertificateError::NotValidYet => "the server's certificate is not valid yet".into(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<String> = presented.iter().map(|n| general_name(n)).collect();
            let expected = expected.to_str();
            if names.is_empty() {
                format!("the server's certificate names no host, not {expected}")
            } else {
                format!("certificate is for {}, not {expected}", names.join(", "))
            }
        }
        CertificateError::NotValidForName => {
            "the server's certificate is for another host name".into()
        }
        CertificateError::Revoked => "the server's certificate was revoked".into(),
        CertificateError::BadSignature => "the server's certificate has a bad signature".into(),
        CertificateError::BadEncoding => "the server's certificate is malformed".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's certificate is not for TLS servers (extended key usage)".into()
        }
        CertificateError::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => format!(
            "{untrusted}: it is a CA certificate used as the server's own (a self-signed \
             certificate? put it in a ca_file only if it is a real CA that signed another one)"
        ),
        other => format!("{untrusted}: {other}"),
    })
}

/// A certificate's time as a date and time in UTC.
fn date(t: rustls_pki_types::UnixTime) -> String {
    let secs = t.as_secs().min(i64::MAX as u64) as i64;
    match jiff::Timestamp::from_second(secs) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{secs} s after 1970"),
    }
}

/// A name as webpki presents it (`DnsName("a.example")`, `IpAddress(10.0.0.5)`), bare.
fn general_name(n: &str) -> String {
    for prefix in ["DnsName(", "IpAddress(", "UniformResourceIdentifier("] {
        if let Some(rest) = n.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            return rest.trim_matches('"').to_string();
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_in_plain_words() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            describe(&e).as_deref(),
            Some(
                "the server's certificate is not trusted (its issuer is not in the system's \
                 CA bundle or ca_file)"
            )
        );
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: rustls_pki_types::ServerName::try_from("10.0.0.5")
                .expect("an address")
                .to_owned(),
            presented: vec!["DnsName(\"mail.example.com\")".into()],
        });
        assert_eq!(
            describe(&e).as_deref(),
            Some("certificate is for mail.example.com, not 10.0.0.5")
        );
        let e = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000)),
            not_after: rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(
                1_700_000_000,
            )),
        });
        assert_eq!(
            describe(&e).as_deref(),
            Some("the server's certificate expired on 2023-11-14 22:13:20 UTC")
        );
        // Through an I/O error, as lettre and ureq hand it on.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(explain(&io).is_some_and(|s| s.contains("not trusted")));
        assert_eq!(describe(&rustls::Error::DecryptError), None);
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("cw-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("empty.pem");
        std::fs::write(&f, "not a certificate\n").expect("write");
        let e = read_pem_bundle(&f).expect_err("no certificate");
        assert!(e.contains("holds no certificate"), "{e}");
        let e = read_pem_bundle(&dir.join("missing.pem")).expect_err("missing");
        assert!(e.contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
