//! PEM armour for the DER keys plugins produce (RFC 7468 labels OpenSSL uses).

use anyhow::{Context, Result, bail};

pub const PRIVATE_KEY: &str = "PRIVATE KEY";
pub const PUBLIC_KEY: &str = "PUBLIC KEY";

pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

/// The DER inside a PEM block with the expected label. Raw DER is accepted as well.
pub fn decode(label: &str, data: &[u8]) -> Result<Vec<u8>> {
    if data.first() == Some(&0x30) {
        return Ok(data.to_vec());
    }
    let p = pem::parse(data).context("not PEM (or DER)")?;
    if p.tag() != label {
        bail!("expected a PEM block labelled {label:?}, found {:?}", p.tag());
    }
    Ok(p.into_contents())
}
