//! The CLI as a client of a real server (`--socket`): the same answers as local mode, DSSE,
//! keys and AES-GCM under the rules, a client under another uid, the server's trust anchors.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::server::{Server, me};
use crate::service::allow_me;

pub(crate) use crate::common::client;

#[test]
fn the_cli_as_a_client_gives_the_same_answers_as_local_mode() {
    let server = Server::start(Some("client"), &allow_me("\"sign\"", "\"sim:demo-*\"", ""));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("artifact.bin");
    fs::write(&file, vec![7u8; (1 << 20) + 3]).unwrap();
    let f = file.to_str().unwrap();
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_string();

    // hash: the same digest as local mode.
    let remote = client(&server.socket, &["hash", "--alg", "SHA-512", f]);
    assert_eq!(remote.status.code(), Some(0), "{}", String::from_utf8_lossy(&remote.stderr));
    let local = common::run(&server.config, &["hash", "--alg", "SHA-512", f]);
    assert_eq!(text(&remote), text(&local));

    // sign through the server, verify locally and through the server; a tampered file fails.
    for (alg, key) in [("ES256", "sim:demo-es"), ("PS256", "sim:demo-ps"), ("EdDSA", "sim:demo-ed")] {
        let sig = dir.path().join(format!("{alg}.sig"));
        let out = client(&server.socket, &["sign", "--alg", alg, "--key", key, "--out", sig.to_str().unwrap(), f]);
        assert_eq!(out.status.code(), Some(0), "{alg}: {}", String::from_utf8_lossy(&out.stderr));
        let public = dir.path().join(format!("{alg}.pub"));
        fs::write(&public, common::run(&server.config, &["keys", "public", key, "--alg", alg]).stdout).unwrap();
        let args = |file: &str| {
            vec![
                "verify".to_string(),
                "--alg".into(),
                alg.into(),
                "--pub".into(),
                public.to_str().unwrap().into(),
                "--sig".into(),
                sig.to_str().unwrap().into(),
                file.into(),
            ]
        };
        let a = args(f);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let local = common::run(&server.config, &a);
        assert_eq!((local.status.code(), text(&local)), (Some(0), "valid".into()), "{alg} local");
        let remote = client(&server.socket, &a);
        assert_eq!(
            (remote.status.code(), text(&remote)),
            (Some(0), "valid".into()),
            "{alg} remote: {}",
            String::from_utf8_lossy(&remote.stderr)
        );
        let tampered = dir.path().join("tampered.bin");
        fs::write(&tampered, b"something else").unwrap();
        let b = args(tampered.to_str().unwrap());
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        let remote = client(&server.socket, &b);
        assert_eq!((remote.status.code(), text(&remote)), (Some(1), "invalid".into()), "{alg}");
    }
    // Denied keys, key files and unknown algorithms: exit 2 with the reason.
    let out = client(&server.socket, &["sign", "--alg", "ES256", "--key", "sim:secret", f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("access denied"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = client(&server.socket, &["sign", "--alg", "ES256", "--key", "/etc/ssl/key.pem", f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stays on this machine"));
    let out = client(&server.socket, &["hash", "--alg", "MD5", f]);
    assert_eq!(out.status.code(), Some(2));
    // No server there: a clear error, not a hang.
    let out = client(&dir.path().join("nobody.sock"), &["hash", "--alg", "SHA-256", f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody.sock"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_cli_as_a_client_for_dsse_keys_and_aes_gcm() {
    let server = Server::start(
        Some("client2"),
        &allow_me("\"sign\", \"encrypt\", \"decrypt\", \"generate\"", "\"sim:team-*\"", "\"release\""),
    );
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let ok = |out: &std::process::Output| {
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    };
    fs::write(d("payload.json"), b"{\"_type\":\"statement\"}").unwrap();
    // keys public through the server, then DSSE sign (key + profile) and verify through it.
    let out = client(&server.socket, &["keys", "public", "sim:team-a", "--alg", "ES256"]);
    ok(&out);
    fs::write(d("team.pub"), &out.stdout).unwrap();
    let release = common::run(&server.config, &["keys", "public", "sim:release", "--alg", "ES256"]);
    fs::write(d("release.pub"), &release.stdout).unwrap();
    let out = client(
        &server.socket,
        &[
            "dsse",
            "sign",
            "--key",
            "sim:team-a",
            "--alg",
            "ES256",
            "--profile",
            "release",
            "--payload-type",
            "t",
            "--out",
            &s(&d("env.json")),
            &s(&d("payload.json")),
        ],
    );
    ok(&out);
    let verify = |extra: &[&str]| {
        let mut args = vec!["dsse".to_string(), "verify".into()];
        args.extend(extra.iter().map(|x| x.to_string()));
        args.push(s(&d("env.json")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        client(&server.socket, &args)
    };
    let both = verify(&[
        "--pub",
        &s(&d("team.pub")),
        "--pub",
        &s(&d("release.pub")),
        "--threshold",
        "2",
        "--payload-out",
        &s(&d("out.json")),
    ]);
    ok(&both);
    assert_eq!(fs::read(d("out.json")).unwrap(), fs::read(d("payload.json")).unwrap());
    // The envelope also verifies locally, with the same keys.
    let local = common::run(
        &server.config,
        &[
            "dsse",
            "verify",
            "--pub",
            &s(&d("team.pub")),
            "--pub",
            &s(&d("release.pub")),
            "--threshold",
            "2",
            &s(&d("env.json")),
        ],
    );
    assert_eq!(local.status.code(), Some(0), "{}", String::from_utf8_lossy(&local.stderr));
    let twice = verify(&["--pub", &s(&d("team.pub")), "--pub", &s(&d("team.pub")), "--threshold", "2"]);
    assert_eq!(twice.status.code(), Some(1));
    // --key-id: the server maps it to its profile and writes the id as the keyid.
    let out = client(
        &server.socket,
        &[
            "dsse",
            "sign",
            "--key-id",
            "release-key-001",
            "--payload-type",
            "t",
            "--out",
            &s(&d("byid.json")),
            &s(&d("payload.json")),
        ],
    );
    ok(&out);
    let env: serde_json::Value = serde_json::from_slice(&fs::read(d("byid.json")).unwrap()).unwrap();
    assert_eq!(env["signatures"][0]["keyid"], "release-key-001");
    let out = client(
        &server.socket,
        &["dsse", "sign", "--key-id", "nobody-knows", "--payload-type", "t", &s(&d("payload.json"))],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 403"), "{}", String::from_utf8_lossy(&out.stderr));
    // AES-GCM: encrypt and decrypt through the server; the file format is the local one.
    fs::write(d("secret.txt"), b"launch codes").unwrap();
    ok(&client(
        &server.socket,
        &["encrypt", "--key", "sim:team-vault", "--aad", "ctx", "--out", &s(&d("sealed.bin")), &s(&d("secret.txt"))],
    ));
    ok(&client(
        &server.socket,
        &["decrypt", "--key", "sim:team-vault", "--aad", "ctx", "--out", &s(&d("plain.txt")), &s(&d("sealed.bin"))],
    ));
    assert_eq!(fs::read(d("plain.txt")).unwrap(), b"launch codes");
    let local = common::run(
        &server.config,
        &["decrypt", "--key", "sim:team-vault", "--aad", "ctx", "--out", &s(&d("plain2.txt")), &s(&d("sealed.bin"))],
    );
    assert_eq!(local.status.code(), Some(0), "seeded keys agree: {}", String::from_utf8_lossy(&local.stderr));
    // Denied and local-only commands say so.
    let out = client(&server.socket, &["keys", "public", "sim:other", "--alg", "ES256"]);
    assert_eq!(out.status.code(), Some(2));
    let out = client(&server.socket, &["providers"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs locally"));
}

#[test]
fn a_client_under_another_uid_is_refused_keys_but_may_verify_and_a_rule_names_exactly_its_key() {
    use std::os::unix::fs::PermissionsExt;
    if me() != 0 {
        eprintln!("NOTE: not root: the other-uid test needs setpriv --reuid and did not run");
        return;
    }
    // A directory the other user can reach, with a copy of the binary it can run.
    let crate::server::ForOthers { dir, bin, msg } = crate::server::for_other_users();
    // The socket is 0660 root:nogroup, so nobody (in nogroup) may connect.
    let rule = "[[service.allow]]\nusers = [\"nobody\"]\noperations = [\"sign\"]\nkeys = [\"sim:nobody-only\"]\n";
    let server = Server::start(Some("uid"), &format!("socket_group = \"nogroup\"\nmax_per_uid = 1\n{rule}"));
    fs::set_permissions(&server.root, fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(&bin)
            .args(["--socket", server.socket.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let m = msg.to_str().unwrap();
    // Verify and hash are open to anyone who can connect.
    let out = as_nobody(&["hash", "--alg", "SHA-256", m]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // A key no rule gives this uid: 403, and the denial names the caller.
    let out = as_nobody(&["sign", "--alg", "ES256", "--key", "sim:demo-a", m]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 403"), "{}", String::from_utf8_lossy(&out.stderr));
    let denial = server.audit().into_iter().find(|l| l["event"] == "denied").expect("the denial is audited");
    assert_eq!(denial["caller"]["uid"], 65534);
    assert_eq!(denial["caller"]["user"], "nobody");
    // Exactly the named key is allowed.
    let out = as_nobody(&["sign", "--alg", "ES256", "--key", "sim:nobody-only", m]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // ... and that signature verifies through the server for the same unprivileged client.
    let sig = dir.path().join("msg.sig");
    fs::write(&sig, &out.stdout).unwrap();
    let public = dir.path().join("nobody.pub");
    fs::write(&public, common::run(&server.config, &["keys", "public", "sim:nobody-only", "--alg", "ES256"]).stdout)
        .unwrap();
    for f in [&sig, &public] {
        fs::set_permissions(f, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out =
        as_nobody(&["verify", "--alg", "ES256", "--pub", public.to_str().unwrap(), "--sig", sig.to_str().unwrap(), m]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");
    let line = server.audit().into_iter().find(|l| l["operation"] == "sign").expect("the use is audited");
    assert_eq!(line["caller"]["uid"], 65534);
    let out = as_nobody(&["sign", "--alg", "ES256", "--key", "sim:nobody-only-not", m]);
    assert_eq!(out.status.code(), Some(2));
    // Each uid has its own share of the places (max_per_uid = 1 here): while this uid holds
    // its one place, its next request is turned away and the other uid is still served.
    let mut slow = UnixStream::connect(&server.socket).unwrap();
    slow.write_all(b"POST /v1/hash?alg=SHA-256 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = server.request("GET", "/v1/providers", None, b"");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("max_per_uid"), "{}", String::from_utf8_lossy(&body));
    let out = as_nobody(&["hash", "--alg", "SHA-256", m]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    slow.write_all(b"defghij").unwrap();
    let mut buf = [0u8; 4096];
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let n = slow.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(server.request("GET", "/v1/providers", None, b"").0, 200);
}

#[test]
fn the_servers_trust_anchors_verify_by_key_id_and_dsse_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    // The anchors name a seeded simulation key (the same seed gives the server the same key).
    let setup = crate::server::config(dir.path(), Some("anchored"), "");
    let public = dir.path().join("rel.pub");
    fs::write(&public, common::run(&setup, &["keys", "public", "sim:rel", "--alg", "ES256"]).stdout).unwrap();
    let anchors = crate::anchors::anchors_dir(
        dir.path(),
        &[("rel-key", "ES256", &public, "release-signing", "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z")],
        "2099-01-01T00:00:00Z",
    );
    let server = Server::start(
        Some("anchored"),
        &format!("{}\n[trust]\nanchors = {:?}\n", allow_me("\"sign\"", "\"sim:rel\"", ""), s(&anchors)),
    );
    let msg = dir.path().join("msg");
    fs::write(&msg, b"release 1.2.3").unwrap();
    let sig = dir.path().join("msg.sig");
    let out = client(&server.socket, &["sign", "--alg", "ES256", "--key", "sim:rel", "--out", &s(&sig), &s(&msg)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let both = |args: &[&str]| (common::run(&server.config, args), client(&server.socket, args));
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_string();

    // verify --key-id: the anchor's key, in both modes; an unknown id or another algorithm is
    // refused with the reason.
    let (local, remote) = both(&["verify", "--alg", "ES256", "--key-id", "rel-key", "--sig", &s(&sig), &s(&msg)]);
    for o in [&local, &remote] {
        assert_eq!((o.status.code(), text(o)), (Some(0), "valid".into()), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (local, remote) = both(&["verify", "--alg", "ES256", "--key-id", "nobody", "--sig", &s(&sig), &s(&msg)]);
    for o in [&local, &remote] {
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("no usable anchor with key id \"nobody\""));
    }
    let (_, remote) = both(&["verify", "--alg", "ES384", "--key-id", "rel-key", "--sig", &s(&sig), &s(&msg)]);
    assert!(String::from_utf8_lossy(&remote.stderr).contains("is for ES256, not ES384"), "{remote:?}");

    // dsse verify with neither --pub nor --anchors: the configured (server's) anchors.
    let env = dir.path().join("env.json");
    let out = client(
        &server.socket,
        &[
            "dsse",
            "sign",
            "--payload-type",
            "text/plain",
            "--key",
            "sim:rel",
            "--alg",
            "ES256",
            "--out",
            &s(&env),
            &s(&msg),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (local, remote) = both(&["dsse", "verify", "--json", &s(&env)]);
    assert_eq!(local.status.code(), Some(0), "{}", String::from_utf8_lossy(&local.stderr));
    assert_eq!(text(&local), text(&remote), "the same document in both modes");
    let v: serde_json::Value = serde_json::from_str(&text(&remote)).unwrap();
    assert_eq!(v["verified_by"], serde_json::json!(["rel-key"]), "the --json document is the server's answer");
    // Another purpose: no anchor left, so invalid, with the anchor's reason, in both modes.
    let (local, remote) = both(&["dsse", "verify", "--purpose", "provider-module", "--json", &s(&env)]);
    assert_eq!((local.status.code(), remote.status.code()), (Some(1), Some(1)));
    assert_eq!(text(&local), text(&remote));
    assert!(text(&remote).contains("purpose"), "{}", text(&remote));
    // The server never opens a client's directory.
    let out = client(&server.socket, &["dsse", "verify", "--anchors", &s(&anchors), &s(&env)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never opens"), "{out:?}");
    // Without configured anchors, the answer says what to give.
    let plain = Server::start(Some("anchored"), "");
    let out = client(&plain.socket, &["dsse", "verify", &s(&env)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trust anchors"), "{out:?}");
}

#[test]
fn a_client_that_requires_another_owner_refuses_the_server() {
    let server = Server::start(Some("owner"), "");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, b"x").unwrap();
    let f = file.to_str().unwrap();
    let out = client(&server.socket, &["--socket-owner", &(me() + 1).to_string(), "hash", "--alg", "SHA-256", f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("runs as uid {}", me())), "{out:?}");
    let out = client(&server.socket, &["--socket-owner", &me().to_string(), "hash", "--alg", "SHA-256", f]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn group_rules_read_the_user_database_or_with_peer_groups_socket_the_connecting_process() {
    use std::os::unix::fs::PermissionsExt;
    if me() != 0 {
        eprintln!("NOTE: not root: the peer-groups test needs setpriv --reuid and did not run");
        return;
    }
    let crate::server::ForOthers { dir, bin, msg } = crate::server::for_other_users();
    // nobody is in no group but nogroup in the user database; `tty` is given to its process.
    let rule = "[[service.allow]]\ngroups = [\"tty\"]\noperations = [\"sign\"]\nkeys = [\"sim:tty-key\"]\n";
    let sign = |server: &Server, groups: &str| {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", groups, "--"])
            .arg(&bin)
            .args(["--socket", server.socket.to_str().unwrap(), "sign", "--alg", "ES256", "--key", "sim:tty-key"])
            .arg(&msg)
            .output()
            .unwrap()
    };
    for (mode, with_tty, without) in [("database", Some(2), Some(2)), ("socket", Some(0), Some(2))] {
        let server =
            Server::start(Some("groups"), &format!("socket_group = \"nogroup\"\npeer_groups = \"{mode}\"\n{rule}"));
        fs::set_permissions(&server.root, fs::Permissions::from_mode(0o755)).unwrap();
        let out = sign(&server, "--groups=tty");
        assert_eq!(out.status.code(), with_tty, "{mode}, process in tty: {}", String::from_utf8_lossy(&out.stderr));
        let out = sign(&server, "--clear-groups");
        assert_eq!(out.status.code(), without, "{mode}, no groups: {}", String::from_utf8_lossy(&out.stderr));
        if without == Some(2) {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("HTTP 403"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // A value other than the two is refused with the field named.
    let bad = crate::server::config(dir.path(), None, "peer_groups = \"proc\"\n");
    let out = common::run(&bad, &["providers"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("service.peer_groups"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_exported_socket_variable_serves_what_a_server_can_and_leaves_local_commands_local() {
    let server = Server::start(Some("env"), "");
    let msg = server.root.join("msg");
    fs::write(&msg, b"through the variable").unwrap();
    let with_variable = |config: &std::path::Path, args: &[&str]| {
        Command::new(common::binary())
            .arg("--config")
            .arg(config)
            .args(args)
            .env("CRYPTOHOST_SOCKET", &server.socket)
            .output()
            .unwrap()
    };
    // A servable command goes to the server: no config is needed here.
    let out = with_variable(
        std::path::Path::new("/nonexistent/cryptohost.toml"),
        &["hash", "--alg", "SHA-256", msg.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Local-only commands run here, the variable notwithstanding.
    let out = with_variable(&server.config, &["providers"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("offline-verification"));
    let key = server.root.join("k.pem");
    let out = with_variable(&server.config, &["keygen", "--alg", "ES256", "--out", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `-` reads standard input and `--out -` writes standard output, locally and through a server,
/// with the same bytes as the file would give; a whole message on stdin stays within its limit.
#[test]
fn a_dash_reads_stdin_and_out_dash_writes_stdout_in_both_modes() {
    let rules = crate::service::allow_me("\"sign\", \"encrypt\", \"decrypt\"", "\"sim:pipe-*\"", "");
    let server = Server::start(Some("pipe"), &rules);
    let text =
        fs::read_to_string(&server.config).unwrap().replace("[service]", "[dsse]\nmax_payload_mib = 1\n\n[service]");
    fs::write(&server.config, text).unwrap();
    let msg = server.root.join("msg");
    fs::write(&msg, b"from a pipe").unwrap();
    let piped = |socket: Option<&std::path::Path>, args: &[&str], input: &[u8]| {
        let mut c = Command::new(common::binary());
        c.arg("--config").arg(&server.config).env_remove("CRYPTOHOST_SOCKET");
        if let Some(s) = socket {
            c.arg("--socket").arg(s);
        }
        let mut child = c
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    };
    let public = server.root.join("pipe.pub");
    fs::write(&public, common::run(&server.config, &["keys", "public", "sim:pipe-ec", "--alg", "ES256"]).stdout)
        .unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    for socket in [None, Some(server.socket.as_path())] {
        let mode = if socket.is_some() { "client" } else { "local" };
        let by_file = piped(socket, &["hash", "--alg", "SHA-256", &s(&msg)], b"");
        let by_pipe = piped(socket, &["hash", "--alg", "SHA-256", "-"], b"from a pipe");
        assert_eq!(by_pipe.status.code(), Some(0), "{mode}: {}", String::from_utf8_lossy(&by_pipe.stderr));
        assert_eq!(by_pipe.stdout, by_file.stdout, "{mode}");
        // sign -, --out - gives the raw signature, which verifies with the message on stdin.
        let sig = piped(socket, &["sign", "--alg", "ES256", "--key", "sim:pipe-ec", "--out", "-", "-"], b"from a pipe");
        assert_eq!(sig.status.code(), Some(0), "{mode}: {}", String::from_utf8_lossy(&sig.stderr));
        let sig_file = server.root.join(format!("{mode}.sig"));
        fs::write(&sig_file, &sig.stdout).unwrap();
        let ok = piped(
            socket,
            &["verify", "--alg", "ES256", "--pub", &s(&public), "--sig", &s(&sig_file), "-"],
            b"from a pipe",
        );
        assert_eq!((ok.status.code(), String::from_utf8_lossy(&ok.stdout).trim()), (Some(0), "valid"), "{mode}");
        let bad = piped(
            socket,
            &["verify", "--alg", "ES256", "--pub", &s(&public), "--sig", &s(&sig_file), "-"],
            b"tampered",
        );
        assert_eq!(bad.status.code(), Some(1), "{mode}");
        // dsse sign of stdin; encrypt to stdout and decrypt from stdin.
        let env = piped(
            socket,
            &["dsse", "sign", "--key", "sim:pipe-ec", "--alg", "ES256", "--payload-type", "text/plain", "-"],
            b"payload",
        );
        assert_eq!(env.status.code(), Some(0), "{mode}: {}", String::from_utf8_lossy(&env.stderr));
        assert!(String::from_utf8_lossy(&env.stdout).contains("cGF5bG9hZA=="), "{mode}");
        let sealed = piped(socket, &["encrypt", "--key", "sim:pipe-aes", "--out", "-", "-"], b"secret");
        assert_eq!(sealed.status.code(), Some(0), "{mode}: {}", String::from_utf8_lossy(&sealed.stderr));
        let opened = piped(socket, &["decrypt", "--key", "sim:pipe-aes", "--out", "-", "-"], &sealed.stdout);
        assert_eq!((opened.status.code(), opened.stdout.as_slice()), (Some(0), b"secret".as_slice()), "{mode}");
    }
    // A whole message (EdDSA) on stdin past the payload limit is refused, not read into memory.
    let big = vec![b'x'; 2 << 20];
    let out = piped(None, &["sign", "--alg", "EdDSA", "--key", "sim:pipe-ed", "-"], &big);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limit"), "{}", String::from_utf8_lossy(&out.stderr));
    // --out - and --json cannot share stdout.
    let out = piped(None, &["sign", "--alg", "ES256", "--key", "sim:pipe-ec", "--json", "--out", "-", "-"], b"x");
    assert_eq!(out.status.code(), Some(2));
}
