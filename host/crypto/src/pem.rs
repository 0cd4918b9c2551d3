//! PEM armour for the DER keys plugins produce (RFC 7468 labels OpenSSL uses).

pub const PRIVATE_KEY: &str = "PRIVATE KEY";
pub const PUBLIC_KEY: &str = "PUBLIC KEY";

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("not PEM (or DER): {0}")]
    Parse(String),
    #[error("expected a PEM block labelled {expected:?}, found {found:?}")]
    Label { expected: String, found: String },
}

pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

/// The DER inside a PEM block with the expected label. Raw DER is accepted as well.
pub fn decode(label: &str, data: &[u8]) -> Result<Vec<u8>, PemError> {
    if data.first() == Some(&0x30) {
        return Ok(data.to_vec());
    }
    let p = pem::parse(data).map_err(|e| PemError::Parse(e.to_string()))?;
    if p.tag() != label {
        return Err(PemError::Label { expected: label.into(), found: p.tag().into() });
    }
    Ok(p.into_contents())
}
