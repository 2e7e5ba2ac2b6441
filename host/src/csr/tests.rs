//! Unit tests of the PKCS#10 builder (end to end with openssl: `tests/all/csr.rs`).

#![allow(clippy::wildcard_imports)]
use super::*;

fn hex(text: &str) -> Vec<u8> {
    let text: String = text.split_whitespace().collect();
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn spki(oid: ObjectIdentifier, parameters: Option<Any>, key: &[u8]) -> Vec<u8> {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned { oid, parameters },
        subject_public_key: BitString::from_bytes(key).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn ec_spki(curve: ObjectIdentifier, point_len: usize) -> Vec<u8> {
    let mut point = vec![0x11; point_len];
    point[0] = 0x04;
    spki(rfc5912::ID_EC_PUBLIC_KEY, Some(Any::encode_from(&curve).unwrap()), &point)
}

fn rsa_spki(modulus_len: usize) -> Vec<u8> {
    let modulus = vec![0xc5; modulus_len];
    let key =
        RsaPublicKey { modulus: UintRef::new(&modulus).unwrap(), public_exponent: UintRef::new(&[1, 0, 1]).unwrap() };
    spki(rfc5912::RSA_ENCRYPTION, Some(Any::null()), &key.to_der().unwrap())
}

fn ecdsa_sig(r: &[u8], s: &[u8]) -> Vec<u8> {
    EcdsaSigValue { r: UintRef::new(r).unwrap(), s: UintRef::new(s).unwrap() }.to_der().unwrap()
}

/// A key and a well-shaped (not valid) signature for each algorithm.
fn fixture(alg: CsrAlgorithm) -> (Vec<u8>, Vec<u8>) {
    match alg {
        CsrAlgorithm::Es256 => (ec_spki(rfc5912::SECP_256_R_1, 65), ecdsa_sig(&[1; 32], &[2; 32])),
        CsrAlgorithm::Es384 => (ec_spki(rfc5912::SECP_384_R_1, 97), ecdsa_sig(&[1; 48], &[2; 48])),
        CsrAlgorithm::Es512 => (ec_spki(rfc5912::SECP_521_R_1, 133), ecdsa_sig(&[1; 66], &[2; 66])),
        CsrAlgorithm::EdDsa => (spki(rfc8410::ID_ED_25519, None, &[7; 32]), vec![9; 64]),
        CsrAlgorithm::MlDsa44 => (spki(fips204::ID_ML_DSA_44, None, &[7; 1312]), vec![9; 2420]),
        CsrAlgorithm::MlDsa65 => (spki(fips204::ID_ML_DSA_65, None, &[7; 1952]), vec![9; 3309]),
        CsrAlgorithm::MlDsa87 => (spki(fips204::ID_ML_DSA_87, None, &[7; 2592]), vec![9; 4627]),
        _ => (rsa_spki(256), vec![9; 256]),
    }
}

fn build(alg: CsrAlgorithm, subject: &str, sans: &[San]) -> Result<Vec<u8>, CsrError> {
    let (key, signature) = fixture(alg);
    build_csr(&CsrRequest { subject, sans }, &key, alg.name(), |_: &[u8]| Ok::<_, String>(signature))
}

fn subject_err(subject: &str) -> String {
    match encode_subject(subject) {
        Ok(der) => panic!("{subject:?} was accepted: {der:02x?}"),
        Err(err) => err.to_string(),
    }
}

// ----- subjects ----------------------------------------------------------------------

#[test]
fn rdns_are_reversed_into_der_order() {
    let der = encode_subject("CN=a,O=b,C=DE").unwrap();
    let expected = hex("30 25
           31 0b 30 09 06 03 55 04 06 13 02 44 45
           31 0a 30 08 06 03 55 04 0a 0c 01 62
           31 0a 30 08 06 03 55 04 03 0c 01 61");
    assert_eq!(der, expected);
}

#[test]
fn multi_valued_rdn_is_a_der_sorted_set() {
    let expected = hex("30 18 31 16
           30 08 06 03 55 04 05 13 01 31
           30 0a 06 03 55 04 03 0c 03 61 62 63");
    assert_eq!(encode_subject("CN=abc+serialNumber=1").unwrap(), expected);
    assert_eq!(encode_subject("serialNumber=1+CN=abc").unwrap(), expected);
}

#[test]
fn string_types_follow_the_attribute() {
    let der = encode_subject("emailAddress=a@b.example,DC=example,serialNumber=X1,C=DE,CN=\u{e9}").unwrap();
    // CN UTF8String (0c), C and serialNumber PrintableString (13), DC and emailAddress IA5String (16).
    for needle in [
        hex("06 03 55 04 03 0c 02 c3 a9"),
        hex("06 03 55 04 06 13 02 44 45"),
        hex("06 03 55 04 05 13 02 58 31"),
        hex("06 0a 09 92 26 89 93 f2 2c 64 01 19 16 07"),
        hex("06 09 2a 86 48 86 f7 0d 01 09 01 16 0b"),
    ] {
        assert!(der.windows(needle.len()).any(|w| w == needle.as_slice()), "{needle:02x?} not in {der:02x?}");
    }
}

#[test]
fn escapes_are_decoded() {
    let expected = encode_subject("CN=#0c0c612c622b633d643b3c3e2022").unwrap();
    assert_eq!(encode_subject(r#"CN=a\,b\+c\=d\;\<\>\ \""#).unwrap(), expected);
    // Hex escapes spell UTF-8 bytes.
    assert_eq!(encode_subject(r"CN=M\C3\BCller").unwrap(), encode_subject("CN=M\u{fc}ller").unwrap());
    // An escaped backslash and '#' in the middle of a value.
    assert_eq!(
        encode_subject(r"CN=a\\b#c").unwrap(),
        encode_subject("CN=#0c0561 5c 62 23 63".replace(' ', "").as_str()).unwrap()
    );
    // Unescaped spaces around separators are dropped; escaped ones are kept.
    assert_eq!(encode_subject(" CN = a , O = b ").unwrap(), encode_subject("CN=a,O=b").unwrap());
    assert_eq!(encode_subject(r"CN=\ a\ ").unwrap(), encode_subject("CN=#0c03206120").unwrap());
    // '=' needs no escape inside a value; names are case-insensitive; long names work.
    assert_eq!(encode_subject("cn=a=b").unwrap(), encode_subject("commonName=a=b").unwrap());
    assert_eq!(encode_subject("2.5.4.3=x").unwrap(), encode_subject("CN=x").unwrap());
    assert_eq!(encode_subject("2.5.4.6=DE").unwrap(), encode_subject("C=DE").unwrap());
}

#[test]
fn subject_errors_are_clear() {
    assert!(matches!(encode_subject(""), Err(CsrError::EmptySubject)));
    assert!(matches!(encode_subject("   "), Err(CsrError::EmptySubject)));
    let long = format!("CN={}", "a".repeat(MAX_SUBJECT_LEN));
    assert!(matches!(encode_subject(&long), Err(CsrError::SubjectTooLong { .. })));
    assert!(matches!(encode_subject("XY=z"), Err(CsrError::UnknownAttribute(t)) if t == "XY"));
    assert!(subject_err("XY=z").contains("unknown attribute type \"XY\""));
    assert!(matches!(encode_subject(r"CN=a\q"), Err(CsrError::BadEscape(_))));
    assert!(matches!(encode_subject(r"CN=a\"), Err(CsrError::BadEscape(_))));
    assert!(matches!(encode_subject(r"CN=a\4"), Err(CsrError::BadEscape(_))));
    assert!(matches!(encode_subject(r"CN=a\4g"), Err(CsrError::BadEscape(_))));
    assert!(matches!(encode_subject(r"CN=\FF"), Err(CsrError::BadEscape(_))));
    assert!(subject_err("CN=a;b").contains("write \\;"));
    assert!(subject_err("CN=a<b").contains("unescaped '<'"));
    assert!(subject_err("CN=a,").contains("nothing after"));
    assert!(subject_err("CN=a+").contains("nothing after"));
    assert!(subject_err("CN=a,,O=b").contains("empty RDN"));
    assert!(subject_err("=a").contains("missing attribute type"));
    assert!(subject_err("CN").contains("expected '='"));
    assert!(subject_err("CN=a,O").contains("expected '='"));
    assert!(subject_err("C N=a").contains("neither an attribute name nor a dotted OID"));
    assert!(subject_err("CN=").contains("empty"));
    assert!(subject_err("CN=a,O= ").contains("empty"));
    assert!(subject_err("1.2..3=a").contains("not a valid OID"));
    assert!(subject_err("C=de").contains("two-letter"));
    assert!(subject_err("C=DEU").contains("two-letter"));
    assert!(subject_err("C=D1").contains("two-letter"));
    assert!(subject_err("serialNumber=a@b").contains("PrintableString"));
    assert!(subject_err("emailAddress=\u{e9}@b").contains("ASCII"));
    assert!(subject_err(&format!("CN={}", "a".repeat(65))).contains("at most 64"));
    assert!(subject_err("CN=a\u{7}b").contains("control character"));
    assert!(subject_err(r"CN=a\00b").contains("control character"));
    assert!(subject_err("CN=a+CN=a").contains("twice"));
    assert!(subject_err("CN=#0c01").contains("not one DER value"));
    assert!(subject_err("CN=#abc").contains("hex digits"));
    assert!(subject_err("CN=#zz").contains("hex digits"));
    assert!(subject_err("CN=#").contains("hex digits"));
    assert!(subject_err("CN=#0c0161 x").contains("hex digits"));
}

#[test]
fn same_type_twice_is_fine() {
    assert!(encode_subject("CN=a+CN=b,DC=example,DC=com").is_ok());
    assert!(encode_subject(&format!("CN={}", "\u{e9}".repeat(64))).is_ok()); // 64 characters, 128 bytes
}

// ----- SANs ----------------------------------------------------------------------------

#[test]
fn san_parse_prefixes() {
    assert_eq!(San::parse("host.example").unwrap(), San::Dns("host.example".into()));
    assert_eq!(San::parse("dns:host.example").unwrap(), San::Dns("host.example".into()));
    assert_eq!(San::parse("DNS:*.host.example").unwrap(), San::Dns("*.host.example".into()));
    assert_eq!(San::parse("ip:192.0.2.1").unwrap(), San::Ip("192.0.2.1".parse().unwrap()));
    assert_eq!(San::parse("IP:2001:db8::1").unwrap(), San::Ip("2001:db8::1".parse().unwrap()));
    assert_eq!(San::parse("email:a@b.example").unwrap(), San::Email("a@b.example".into()));
    assert_eq!(San::parse("uri:https://x.example/a?b=c").unwrap(), San::Uri("https://x.example/a?b=c".into()));
    assert_eq!(San::parse("URI:urn:uuid:1234").unwrap(), San::Uri("urn:uuid:1234".into()));
    for text in ["dns:a.example", "ip:10.0.0.1", "ip:::1", "email:x@y.example", "uri:spiffe://td/ns/a"] {
        assert_eq!(San::parse(text).unwrap().to_string(), text);
    }
}

#[test]
fn san_errors_are_clear() {
    assert!(matches!(San::parse("ip:300.1.1.1"), Err(CsrError::InvalidIp(t)) if t == "300.1.1.1"));
    assert!(matches!(San::parse("ip:host.example"), Err(CsrError::InvalidIp(_))));
    let reason = |text: &str| match San::parse(text) {
        Err(CsrError::InvalidSan { reason, .. }) => reason,
        other => panic!("{text:?}: {other:?}"),
    };
    assert!(reason("192.0.2.1").contains("ip:"));
    assert!(reason("::1").contains("ip:"));
    assert!(reason("dns:192.0.2.1").contains("ip:"));
    assert!(reason("foo:bar").contains("unknown type prefix"));
    assert!(reason("").contains("empty"));
    assert!(reason("dns:").contains("empty"));
    assert!(reason("host.example.").contains("trailing dot"));
    assert!(reason("a..b").contains("empty label"));
    assert!(reason("-a.example").contains("'-'"));
    assert!(reason("a_b.example").contains("'_'"));
    assert!(reason("a.*.example").contains("'*'"));
    assert!(reason("b\u{fc}cher.example").contains("A-label"));
    assert!(reason(&format!("{}.example", "a".repeat(64))).contains("63"));
    assert!(reason("email:nobody").contains("'@'"));
    assert!(reason("email:@b.example").contains("local part"));
    assert!(reason("email:a b@b.example").contains("local part"));
    assert!(reason("email:a@*.example").contains("domain"));
    assert!(reason("uri:/relative").contains("absolute URI"));
    assert!(reason("uri:https://a b").contains("' '"));
    assert!(reason(&format!("uri:https://{}", "a".repeat(MAX_SAN_LEN))).contains("longer"));
}

#[test]
fn san_values_are_checked_when_built_directly() {
    let err = build(CsrAlgorithm::EdDsa, "CN=x", &[San::Dns("bad name".into())]).unwrap_err();
    assert!(matches!(err, CsrError::InvalidSan { .. }), "{err}");
}

#[test]
fn san_count_is_bounded() {
    let sans: Vec<San> = (0..MAX_SANS).map(|i| San::Dns(format!("h{i}.example"))).collect();
    assert!(build(CsrAlgorithm::EdDsa, "CN=x", &sans).is_ok());
    let sans: Vec<San> = (0..=MAX_SANS).map(|i| San::Dns(format!("h{i}.example"))).collect();
    let err = build(CsrAlgorithm::EdDsa, "CN=x", &sans).unwrap_err();
    assert!(matches!(err, CsrError::TooManySans { count: 101, max: 100 }), "{err}");
}

// ----- the request ---------------------------------------------------------------------

#[test]
fn algorithm_names_round_trip() {
    for alg in CsrAlgorithm::ALL {
        assert_eq!(CsrAlgorithm::parse(alg.name()).unwrap(), alg);
        assert_eq!(alg.to_string().parse::<CsrAlgorithm>().unwrap(), alg);
    }
    assert_eq!(CsrAlgorithm::parse("Ed25519").unwrap(), CsrAlgorithm::EdDsa);
    let err = CsrAlgorithm::parse("es256").unwrap_err().to_string();
    assert!(err.contains("\"es256\"") && err.contains("ML-DSA-87"), "{err}");
    let (key, _) = fixture(CsrAlgorithm::Es256);
    let err = build_csr(&CsrRequest { subject: "CN=x", sans: &[] }, &key, "HS256", |_: &[u8]| Ok::<_, String>(vec![]))
        .unwrap_err();
    assert!(matches!(err, CsrError::UnsupportedAlgorithm(_)), "{err}");
}

/// The PSS AlgorithmIdentifiers are byte for byte what OpenSSL 3.0 writes for
/// `openssl req -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest`.
#[test]
fn pss_parameters_match_openssl() {
    let cases = [
        (
            CsrAlgorithm::Ps256,
            "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120",
        ),
        (
            CsrAlgorithm::Ps384,
            "304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130",
        ),
        (
            CsrAlgorithm::Ps512,
            "304106092a864886f70d01010a3034a00f300d06096086480165030402030500a11c301a06092a864886f70d010108300d06096086480165030402030500a203020140",
        ),
    ];
    for (alg, expected) in cases {
        assert_eq!(alg.signature_algorithm().unwrap().to_der().unwrap(), hex(expected), "{alg}");
    }
}

#[test]
fn signature_algorithm_parameters() {
    let der = |alg: CsrAlgorithm| alg.signature_algorithm().unwrap().to_der().unwrap();
    assert_eq!(der(CsrAlgorithm::Es256), hex("300a 0608 2a8648ce3d040302"));
    assert_eq!(der(CsrAlgorithm::Es512), hex("300a 0608 2a8648ce3d040304"));
    assert_eq!(der(CsrAlgorithm::Rs256), hex("300d 0609 2a864886f70d01010b 0500"));
    assert_eq!(der(CsrAlgorithm::Rs384), hex("300d 0609 2a864886f70d01010c 0500"));
    assert_eq!(der(CsrAlgorithm::EdDsa), hex("3005 0603 2b6570"));
    assert_eq!(der(CsrAlgorithm::MlDsa44), hex("300b 0609 608648016503040311"));
    assert_eq!(der(CsrAlgorithm::MlDsa87), hex("300b 0609 608648016503040313"));
}

#[test]
fn every_algorithm_builds_a_well_formed_request() {
    let sans = [San::parse("a.example").unwrap(), San::parse("ip:192.0.2.7").unwrap()];
    for alg in CsrAlgorithm::ALL {
        let (key, signature) = fixture(alg);
        let mut seen = Vec::new();
        let der = build_csr(&CsrRequest { subject: "CN=x,C=DE", sans: &sans }, &key, alg.name(), |tbs: &[u8]| {
            seen = tbs.to_vec();
            Ok::<_, String>(signature.clone())
        })
        .unwrap();
        let req = CertificationRequest::from_der(&der).unwrap();
        assert_eq!(req.info.to_der().unwrap(), seen, "{alg}: the signer saw the info");
        assert_eq!(req.info.version, 0);
        assert_eq!(req.info.subject_pk_info.to_der().unwrap(), key, "{alg}");
        assert_eq!(req.info.subject.to_der().unwrap(), encode_subject("CN=x,C=DE").unwrap());
        assert_eq!(req.signature_algorithm, alg.signature_algorithm().unwrap(), "{alg}");
        assert_eq!(req.signature.as_bytes().unwrap(), signature.as_slice(), "{alg}");

        let attributes: Vec<_> = req.info.attributes.iter().collect();
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].oid, rfc2985::PKCS_9_AT_EXTENSION_REQUEST);
        let values: Vec<_> = attributes[0].values.iter().collect();
        assert_eq!(values.len(), 1);
        let extensions: Vec<Extension> = values[0].decode_as().unwrap();
        assert_eq!(extensions.len(), 1);
        assert_eq!(extensions[0].extn_id, rfc5912::ID_CE_SUBJECT_ALT_NAME);
        assert!(!extensions[0].critical);
        let names = Vec::<GeneralName>::from_der(extensions[0].extn_value.as_bytes()).unwrap();
        assert_eq!(names.to_der().unwrap(), hex("3011 8209 612e6578616d706c65 8704 c0000207"));
    }
}

#[test]
fn no_sans_means_an_empty_attribute_set() {
    let der = build(CsrAlgorithm::EdDsa, "CN=x", &[]).unwrap();
    let req = CertificationRequest::from_der(&der).unwrap();
    assert!(req.info.attributes.is_empty());
    let info = req.info.to_der().unwrap();
    assert_eq!(&info[info.len() - 2..], &[0xa0, 0x00]);
    // version 0 right after the info's header
    assert_eq!(&info[2..5], &[0x02, 0x01, 0x00]);
}

#[test]
fn general_name_encodings() {
    let der = |text: &str| San::parse(text).unwrap().general_name().unwrap().to_der().unwrap();
    assert_eq!(der("dns:a.b"), hex("8203 612e62"));
    assert_eq!(der("email:a@b.c"), hex("8105 6140622e63"));
    assert_eq!(der("uri:a:b"), hex("8603 613a62"));
    assert_eq!(der("ip:192.0.2.7"), hex("8704 c0000207"));
    assert_eq!(der("ip:::1"), hex("8710 00000000000000000000000000000001"));
}

#[test]
fn key_checks() {
    let err = |alg: CsrAlgorithm, key: &[u8]| {
        build_csr(&CsrRequest { subject: "CN=x", sans: &[] }, key, alg.name(), |_: &[u8]| -> Result<Vec<u8>, String> {
            panic!("the signer must not be called")
        })
        .unwrap_err()
    };
    // Every algorithm refuses every other family's key, naming both.
    for alg in CsrAlgorithm::ALL {
        for other in CsrAlgorithm::ALL {
            let (key, _) = fixture(other);
            if alg.expected_key() == other.expected_key() {
                continue;
            }
            match err(alg, &key) {
                CsrError::KeyMismatch { algorithm, expected, found } => {
                    assert_eq!(algorithm, alg);
                    assert_eq!(expected, alg.expected_key());
                    assert!(found.contains(other.expected_key().trim_end_matches(" (rsaEncryption)")), "{found}");
                }
                e => panic!("{alg} with {other}'s key: {e}"),
            }
        }
    }
    let text = err(CsrAlgorithm::Es256, &ec_spki(rfc5912::SECP_384_R_1, 97)).to_string();
    assert_eq!(text, "algorithm ES256 needs an EC P-256 key, but the public key is an EC P-384 key");

    assert!(matches!(err(CsrAlgorithm::Es256, b"junk"), CsrError::InvalidSpki(_)));
    let mut trailing = fixture(CsrAlgorithm::Es256).0;
    trailing.push(0);
    assert!(matches!(err(CsrAlgorithm::Es256, &trailing), CsrError::InvalidSpki(_)));
    assert!(err(CsrAlgorithm::Es256, &ec_spki(rfc5912::SECP_256_R_1, 64)).to_string().contains("65 bytes"));
    let unnamed = spki(rfc5912::ID_EC_PUBLIC_KEY, None, &[4; 65]);
    assert!(err(CsrAlgorithm::Es256, &unnamed).to_string().contains("without a named curve"));
    let rsa_no_null = spki(rfc5912::RSA_ENCRYPTION, None, &[0x30, 0x00]);
    assert!(err(CsrAlgorithm::Rs256, &rsa_no_null).to_string().contains("NULL"));
    let rsa_garbage = spki(rfc5912::RSA_ENCRYPTION, Some(Any::null()), &[1, 2, 3]);
    assert!(err(CsrAlgorithm::Rs256, &rsa_garbage).to_string().contains("RSAPublicKey"));
    assert!(err(CsrAlgorithm::Rs256, &rsa_spki(64)).to_string().contains("too short"));
    let pss_key = spki(rfc5912::ID_RSASSA_PSS, None, &[0x30, 0x00]);
    assert!(err(CsrAlgorithm::Ps256, &pss_key).to_string().contains("id-RSASSA-PSS"));
    let short_ml = spki(fips204::ID_ML_DSA_65, None, &[7; 1951]);
    assert!(err(CsrAlgorithm::MlDsa65, &short_ml).to_string().contains("1952"));
    let ed_params = spki(rfc8410::ID_ED_25519, Some(Any::null()), &[7; 32]);
    assert!(err(CsrAlgorithm::EdDsa, &ed_params).to_string().contains("absent"));
    assert!(err(CsrAlgorithm::EdDsa, &spki(rfc8410::ID_ED_25519, None, &[7; 31])).to_string().contains("32"));
    assert!(err(CsrAlgorithm::EdDsa, &spki(rfc8410::ID_ED_448, None, &[7; 57])).to_string().contains("Ed448"));
}

#[test]
fn signature_shape_checks() {
    let with = |alg: CsrAlgorithm, signature: Vec<u8>| {
        let (key, _) = fixture(alg);
        build_csr(&CsrRequest { subject: "CN=x", sans: &[] }, &key, alg.name(), |_: &[u8]| Ok::<_, String>(signature))
    };
    let reason = |result: Result<Vec<u8>, CsrError>| match result {
        Err(CsrError::BadSignature { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert!(reason(with(CsrAlgorithm::Es256, vec![1; 64])).contains("raw r||s"));
    assert!(reason(with(CsrAlgorithm::Es256, ecdsa_sig(&[0], &[1]))).contains("r is zero"));
    assert!(reason(with(CsrAlgorithm::Es256, ecdsa_sig(&[1; 33], &[1]))).contains("longer"));
    assert!(with(CsrAlgorithm::Es256, ecdsa_sig(&[0x80; 32], &[1])).is_ok());
    let mut trailing = ecdsa_sig(&[1], &[1]);
    trailing.push(0);
    assert!(reason(with(CsrAlgorithm::Es384, trailing)).contains("Ecdsa-Sig-Value"));
    assert!(reason(with(CsrAlgorithm::Rs256, vec![1; 255])).contains("256 bytes"));
    assert!(reason(with(CsrAlgorithm::Ps512, vec![1; 512])).contains("modulus"));
    assert!(reason(with(CsrAlgorithm::EdDsa, vec![1; 63])).contains("not 64"));
    assert!(reason(with(CsrAlgorithm::MlDsa87, vec![1; 4626])).contains("not 4627"));
    let err = with(CsrAlgorithm::EdDsa, vec![]).unwrap_err().to_string();
    assert_eq!(err, "the signer returned an unusable EdDSA signature: 0 bytes, not 64");
}

#[test]
fn pem_label() {
    let pem = to_pem(&[0x30, 0x00]).unwrap();
    assert_eq!(pem, "-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n");
}
