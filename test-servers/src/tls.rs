//! A throwaway certificate authority for TLS tests: a CA certificate file
//! clients trust, and leaf certificates (server and client use) it signs,
//! written as PEM files into the CA's temp dir.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::TestServerError;

/// A CA whose certificate is in [`TestCa::ca_path`]; removed on drop.
pub struct TestCa {
    dir: TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    ca_path: PathBuf,
}

/// A leaf certificate the CA signed, and where its files are.
pub struct IssuedCert {
    /// PEM certificate (the leaf alone).
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8).
    pub key_path: PathBuf,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
}

fn tls_error(error: rcgen::Error) -> TestServerError {
    TestServerError::Io(std::io::Error::other(format!("test certificate: {error}")))
}

impl TestCa {
    /// A new CA (`Roomcast test CA`) in a fresh temp dir.
    pub fn new() -> Result<Self, TestServerError> {
        let dir = tempfile::Builder::new()
            .prefix("roomcast-test-ca-")
            .tempdir()?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Roomcast test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(tls_error)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(tls_error)?;
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, issuer.pem())?;
        Ok(Self {
            dir,
            issuer,
            ca_path,
        })
    }

    /// The CA certificate (PEM file) clients are told to trust.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// Sign a leaf for `names` (DNS names or IP literals), written to
    /// `<name>.pem` and `<name>.key` (replacing earlier files of that name:
    /// how a test renews a certificate in place). It serves as a server and
    /// as a client certificate.
    pub fn issue(&self, name: &str, names: &[&str]) -> Result<IssuedCert, TestServerError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(tls_error)?;
        let cert_path = self.dir.path().join(format!("{name}.pem"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        // Written beside and renamed: a watcher never reads half a file.
        let write = |path: &Path, text: String| -> std::io::Result<()> {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, text)?;
            std::fs::rename(&partial, path)
        };
        write(&key_path, key.serialize_pem())?;
        write(&cert_path, cert.pem())?;
        Ok(IssuedCert {
            cert_path,
            key_path,
            cert_der: cert.der().to_vec(),
        })
    }
}
