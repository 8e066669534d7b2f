//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), client side: the nonce, the
//! salted password, the client proof, and the check of the server's signature (a broker
//! that does not know the password cannot forge it).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::error::{Error, Result};

/// Kafka refuses fewer (`ScramMechanism.minIterations`); a server asking for fewer is
/// refused too, so a rogue server cannot make the password cheap to brute-force.
const MIN_ITERATIONS: u32 = 4096;
/// And more than this would stall the connect for seconds.
const MAX_ITERATIONS: u32 = 1 << 20;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn hmac(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[&[u8]]) -> Vec<u8> {
            // HMAC takes keys of any length: new_from_slice cannot fail.
            let mut mac = match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(m) => m,
                Err(_) => return Vec::new(),
            };
            for d in data {
                mac.update(d);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramHash::Sha256 => run::<Hmac<Sha256>>(key, data),
            ScramHash::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramHash::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// A client nonce: 24 random bytes, base64 (printable, no comma).
pub(crate) fn nonce() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::authentication(format!("SCRAM: no random numbers for a nonce: {e}")))?;
    Ok(STANDARD.encode(bytes))
}

enum State {
    Initial,
    /// client-first sent.
    SentFirst,
    /// client-final sent; the server signature we expect.
    SentFinal {
        server_signature: Vec<u8>,
    },
    Done,
}

/// One SCRAM authentication.
pub(crate) struct ScramClient {
    hash: ScramHash,
    username: String,
    password: String,
    nonce: String,
    state: State,
}

impl ScramClient {
    pub(crate) fn new(hash: ScramHash, username: &str, password: &str, nonce: String) -> Self {
        ScramClient {
            hash,
            username: username.to_string(),
            password: password.to_string(),
            nonce,
            state: State::Initial,
        }
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", escape(&self.username), self.nonce)
    }

    pub(crate) fn step(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Initial => {
                self.state = State::SentFirst;
                Ok(Some(
                    format!("n,,{}", self.client_first_bare()).into_bytes(),
                ))
            }
            State::SentFirst => {
                let server_first = text(server)?;
                let (final_msg, server_signature) = self.client_final(server_first)?;
                self.state = State::SentFinal { server_signature };
                Ok(Some(final_msg.into_bytes()))
            }
            State::SentFinal { server_signature } => {
                let server_final = text(server)?;
                if let Some(e) = attribute(server_final, 'e') {
                    return Err(Error::authentication(format!("SCRAM: the broker said {e}")));
                }
                let v = attribute(server_final, 'v').ok_or_else(|| {
                    Error::authentication("SCRAM: the broker's final message has no signature")
                })?;
                let theirs = STANDARD.decode(v).map_err(|_| {
                    Error::authentication("SCRAM: the broker's signature is not base64")
                })?;
                if !constant_time_eq(&theirs, &server_signature) {
                    return Err(Error::authentication(
                        "SCRAM: the broker's signature is wrong: it does not know the \
                         password (is this the broker you meant to reach?)",
                    ));
                }
                Ok(None)
            }
            State::Done => Ok(None),
        }
    }

    /// client-final-message and the server signature to expect.
    fn client_final(&self, server_first: &str) -> Result<(String, Vec<u8>)> {
        if server_first.starts_with("m=") {
            return Err(Error::authentication(
                "SCRAM: the broker asks for an extension this client does not know",
            ));
        }
        let nonce = attribute(server_first, 'r')
            .ok_or_else(|| Error::authentication("SCRAM: the broker sent no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            return Err(Error::authentication(
                "SCRAM: the broker's nonce does not extend ours",
            ));
        }
        let salt = attribute(server_first, 's')
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(|| Error::authentication("SCRAM: the broker sent no valid salt"))?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| Error::authentication("SCRAM: the broker sent no iteration count"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(Error::authentication(format!(
                "SCRAM: the broker asks for {iterations} iterations, outside \
                 {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        let h = self.hash;
        let salted = h.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, &[b"Client Key"]);
        let stored_key = h.hash(&client_key);
        // c= is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let bare = self.client_first_bare();
        let auth_message: [&[u8]; 5] = [
            bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = h.hmac(&stored_key, &auth_message);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = h.hmac(&salted, &[b"Server Key"]);
        let server_signature = h.hmac(&server_key, &auth_message);
        Ok((
            format!("{without_proof},p={}", STANDARD.encode(proof)),
            server_signature,
        ))
    }
}

fn text(server: Option<&[u8]>) -> Result<&str> {
    let bytes = server.ok_or_else(|| Error::authentication("SCRAM: the broker sent nothing"))?;
    std::str::from_utf8(bytes)
        .map_err(|_| Error::authentication("SCRAM: the broker's message is not UTF-8"))
}

/// The value of attribute `name` (`r=...`) in a comma-separated SCRAM message.
fn attribute(msg: &str, name: char) -> Option<&str> {
    msg.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

/// saslname: `=` and `,` escaped (RFC 5802 5.1).
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3.
    #[test]
    fn rfc7677_sha256_vector() {
        let mut c = ScramClient::new(
            ScramHash::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".to_string(),
        );
        let first = c.step(None).unwrap().unwrap();
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.step(Some(server_first)).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            c.step(Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_forged_server_signature_is_refused() {
        let mut c = ScramClient::new(ScramHash::Sha512, "u", "p", "abc".to_string());
        c.step(None).unwrap();
        c.step(Some(b"r=abcdef,s=c2FsdA==,i=4096")).unwrap();
        let e = c.step(Some(b"v=AAAA")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Authentication);
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        for msg in [
            &b"r=xyz,s=c2FsdA==,i=4096"[..],    // nonce not ours
            b"r=abcdef,s=c2FsdA==,i=1",         // too few iterations
            b"r=abcdef,s=c2FsdA==,i=999999999", // too many
            b"r=abcdef,i=4096",                 // no salt
            b"m=ext,r=abcdef,s=c2FsdA==,i=4096",
            b"\xff\xfe",
        ] {
            let mut c = ScramClient::new(ScramHash::Sha256, "u", "p", "abc".to_string());
            c.step(None).unwrap();
            assert!(c.step(Some(msg)).is_err(), "{msg:?}");
        }
        let mut c = ScramClient::new(ScramHash::Sha256, "u", "p", "abc".to_string());
        c.step(None).unwrap();
        c.step(Some(b"r=abcdef,s=c2FsdA==,i=4096")).unwrap();
        let e = c.step(Some(b"e=invalid-proof")).unwrap_err();
        assert!(e.to_string().contains("invalid-proof"), "{e}");
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(escape("a=b,c"), "a=3Db=2Cc");
    }
}
