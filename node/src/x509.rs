//! Facts a node reads from X.509 certificates (RustCrypto's `x509-cert`): when its TLS
//! certificates expire, for `/health`, `/metrics` and the expiry alerts.

/// When a certificate (DER) stops being valid: its notAfter, in UNIX seconds.
pub fn certificate_not_after(der: &[u8]) -> anyhow::Result<u64> {
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    Ok(cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_consensus::tls::TlsCa;

    #[test]
    fn a_certificates_expiry_is_read_from_it() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["node.example".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2027, 1, 6);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(certificate_not_after(cert.der()).unwrap(), 1_799_193_600);
        // What the consortium's CA issues runs to 4096.
        let api = TlsCa::generate("c").unwrap().issue_api(0, "127.0.0.1").unwrap();
        assert_eq!(certificate_not_after(&api.cert_der).unwrap(), 67_090_118_400);
        assert!(certificate_not_after(b"not a certificate").is_err());
        assert!(certificate_not_after(&cert.der()[..40]).is_err());
    }
}
