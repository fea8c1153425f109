//! Client unit tests: URL parsing, token files, decoding of answers. (Requests against a real server
//! are in the API tests.)

use std::io::Write;

use serde_json::json;

use super::*;

#[test]
fn urls_are_parsed_and_checked() {
    let c = Client::new(
        &[
            "http://127.0.0.1:9900/",
            " http://[::1]:9901 ",
            "http://master/base/",
        ],
        None,
    )
    .expect("valid");
    assert_eq!(
        c.urls(),
        [
            "http://127.0.0.1:9900",
            "http://[::1]:9901",
            "http://master/base"
        ]
    );
    assert_eq!(c.masters[1].authority, "[::1]:9901");
    assert_eq!(c.masters[2].authority, "master:80");
    assert_eq!(c.masters[2].base, "/base");
    for bad in [
        "https://127.0.0.1:9900",
        "127.0.0.1:9900",
        "http://",
        "http://h:1/?x=1",
    ] {
        let e = Client::new(&[bad], None).expect_err(bad);
        assert!(matches!(e, ClientError::BadUrl { .. }), "{bad}: {e:?}");
    }
    assert!(matches!(
        Client::new::<&str>(&[], None),
        Err(ClientError::BadUrl { .. })
    ));
}

#[test]
fn token_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("token");
    std::fs::File::create(&p)
        .and_then(|mut f| f.write_all(b"  abc123\n"))
        .expect("write");
    assert_eq!(read_token_file(&p).expect("token"), "abc123");
    std::fs::write(&p, "\n").expect("write");
    assert!(read_token_file(&p)
        .expect_err("empty")
        .to_string()
        .contains("empty"));
    std::fs::write(&p, "a b").expect("write");
    assert!(read_token_file(&p).is_err());
    let missing = read_token_file(&dir.path().join("nope")).expect_err("missing");
    assert!(matches!(missing, ClientError::Token { .. }));
}

#[test]
fn answers_are_decoded() {
    let m = Master::parse("http://h:1").expect("url");
    assert_eq!(
        decode(&m, 200, "application/json", b"[1]").expect("ok"),
        json!([1])
    );
    assert_eq!(
        decode(&m, 200, "application/json", b"").expect("ok"),
        Value::Null
    );
    assert_eq!(
        decode(&m, 200, "text/plain", b"a 1\n").expect("ok"),
        Value::String("a 1\n".into())
    );
    assert!(matches!(
        decode(&m, 200, "application/json", b"{oops"),
        Err(ClientError::Decode { .. })
    ));
    match decode(
        &m,
        400,
        "application/json",
        br#"{"error":"bad","field":"cidr"}"#,
    ) {
        Err(ClientError::Api {
            status: 400,
            error,
            field,
            ..
        }) => {
            assert_eq!((error.as_str(), field.as_deref()), ("bad", Some("cidr")));
        }
        other => panic!("{other:?}"),
    }
    match decode(&m, 502, "text/html", b"<h1>Bad gateway</h1>") {
        Err(e @ ClientError::Api { .. }) => {
            assert_eq!(e.status(), Some(502));
            assert!(e.to_string().contains("Bad gateway"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
