//! The identity provider's JWK set (`IdentityProvider::from_jwks`, what `[auth] jwks_file` is read
//! with), then verification of provider tokens with whatever keys it yields: ES256, EdDSA and
//! RS256 checks run on fuzzed key material (curve points, RSA moduli and exponents). Never panics.

#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use straja_gateway::auth::identity_provider::IdentityProvider;

const ISSUER: &str = "https://idp.hospital.example";

/// Header `{"alg":"ES256","kid":"ec-1"}`, claims `{"sub":"dr.popescu","role":"clinician",
/// "iss":ISSUER,"iat":4000000000,"nbf":0,"exp":4000000600,"jti":"x1"}`; the signatures are the
/// right length for each algorithm but sign nothing.
const CLAIMS: &str = "eyJzdWIiOiJkci5wb3Blc2N1Iiwicm9sZSI6ImNsaW5pY2lhbiIsImlzcyI6Imh0dHBzOi8vaWRwLmhvc3BpdGFsLmV4YW1wbGUiLCJpYXQiOjQwMDAwMDAwMDAsIm5iZiI6MCwiZXhwIjo0MDAwMDAwNjAwLCJqdGkiOiJ4MSJ9";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let audience = (data.len() % 2 == 1).then_some("straja");
    let Ok(provider) = IdentityProvider::from_jwks(text, ISSUER, audience) else {
        return;
    };
    for (header, signature_len, algorithm) in [
        // {"alg":"ES256","kid":"ec-1"}
        (
            "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLTEifQ",
            64,
            Algorithm::ES256,
        ),
        // {"alg":"EdDSA","kid":"ed-1"}
        (
            "eyJhbGciOiJFZERTQSIsImtpZCI6ImVkLTEifQ",
            64,
            Algorithm::EdDSA,
        ),
        // {"alg":"RS256","kid":"rsa-1"}
        (
            "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIn0",
            256,
            Algorithm::RS256,
        ),
    ] {
        // base64url of `signature_len` bytes of 0x41.
        let signature = "QUFB".repeat(signature_len / 3) + ["", "QQ", "QUE"][signature_len % 3];
        let token = format!("{header}.{CLAIMS}.{signature}");
        for kid in ["ec-1", "ed-1", "rsa-1", "k"] {
            let _ = provider.verify(&token, Some(kid), algorithm);
        }
    }
});
