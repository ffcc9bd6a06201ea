//! Passkeys, server side, with a software authenticator: a P-256 key made here
//! (ring), its attestation object and COSE key encoded with ciborium, assertions signed over
//! `authenticatorData ‖ SHA-256(clientDataJSON)` as an authenticator does.
//!
//! Register through the account page, sign in with the passkey alone (user verified: a
//! `require_2fa` route opens), then the refusals the issue names — wrong origin, wrong RP id,
//! replayed challenge, counter regression, unknown credential — each answered 401 with a
//! `login_failed` activity row that says why. An admin's 2FA reset removes the passkeys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ciborium::Value as Cbor;
use http::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::admin::{admin, call};
use crate::both_backends;
use crate::harness::{Backend, Browser, PASSWORD, TestServer};

both_backends! {
    register_then_sign_in_with_passkey_alone,
    refusals_are_answered_and_logged,
    admin_lists_and_removes_and_old_sessions_need_the_password,
    a_ceremony_started_on_one_instance_finishes_on_another,
}

const ROUTES: &str = "[[routes]]\npath = \"/secure/**\"\nrequire_2fa = true\n";

struct SoftKey {
    id: Vec<u8>,
    key: EcdsaKeyPair,
    counter: u32,
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn cbor(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

impl SoftKey {
    fn new() -> SoftKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut id = vec![0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut id).unwrap();
        SoftKey {
            id,
            key,
            counter: 0,
        }
    }

    /// The COSE_Key of the public key (EC2, ES256, P-256), keys in canonical order.
    fn cose_key(&self) -> Vec<u8> {
        let pk = self.key.public_key().as_ref();
        let (x, y) = (&pk[1..33], &pk[33..65]);
        cbor(&Cbor::Map(vec![
            (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
            (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
            (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
            (Cbor::Integer((-2).into()), Cbor::Bytes(x.to_vec())),
            (Cbor::Integer((-3).into()), Cbor::Bytes(y.to_vec())),
        ]))
    }

    fn auth_data(&self, rp_id: &str, uv: bool, attested: bool) -> Vec<u8> {
        let mut flags = 0x01u8; // user present
        if uv {
            flags |= 0x04;
        }
        if attested {
            flags |= 0x40;
        }
        let mut d = sha256(rp_id.as_bytes());
        d.push(flags);
        d.extend_from_slice(&self.counter.to_be_bytes());
        if attested {
            d.extend_from_slice(&[0u8; 16]); // AAGUID: none
            d.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
            d.extend_from_slice(&self.id);
            d.extend_from_slice(&self.cose_key());
        }
        d
    }

    /// A `RegistrationResponseJSON` for creation options `o`.
    fn register(&self, o: &Value, origin: &str, rp_id: &str) -> String {
        let client_data = json!({
            "type": "webauthn.create",
            "challenge": o["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        let att = cbor(&Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (
                Cbor::Text("authData".into()),
                Cbor::Bytes(self.auth_data(rp_id, true, true)),
            ),
        ]));
        json!({
            "id": B64.encode(&self.id),
            "rawId": B64.encode(&self.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": B64.encode(client_data),
                "attestationObject": B64.encode(att),
                "transports": ["internal"],
            },
        })
        .to_string()
    }

    /// An `AuthenticationResponseJSON` for request options `o`, as user `handle`.
    fn assert(&mut self, o: &Value, origin: &str, rp_id: &str, handle: &str, uv: bool) -> String {
        self.counter += 1;
        let client_data = json!({
            "type": "webauthn.get",
            "challenge": o["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        let auth_data = self.auth_data(rp_id, uv, false);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&sha256(client_data.as_bytes()));
        let sig = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        json!({
            "id": B64.encode(&self.id),
            "rawId": B64.encode(&self.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": B64.encode(client_data),
                "authenticatorData": B64.encode(auth_data),
                "signature": B64.encode(sig.as_ref()),
                "userHandle": handle,
            },
        })
        .to_string()
    }
}

struct Setup {
    s: TestServer,
    origin: String,
    rp_id: &'static str,
    key: SoftKey,
    handle: String,
}

/// A server on `http://localhost:{port}`, user "pat" with one passkey registered through the
/// account page.
async fn setup(b: Backend) -> Setup {
    let s = TestServer::start_on_localhost(b, ROUTES).await.unwrap();
    s.plain_user("pat").await;
    let origin = s.localhost_base();
    let mut br = s.browser();
    br.login("pat", PASSWORD).await;
    let token = br.csrf("/_auth/account/passkeys").await;
    let r = br
        .post_form("/_auth/account/passkeys/options", &[("csrf_token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let o = r.json();
    assert_eq!(o["rp"]["id"], json!("localhost"));
    let handle = o["user"]["id"].as_str().unwrap().to_string();
    let key = SoftKey::new();
    let reg = key.register(&o, &origin, "localhost");
    let r = br
        .post_form(
            "/_auth/account/passkeys",
            &[
                ("csrf_token", &token),
                ("name", "Soft key"),
                ("credential", &reg),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let page = br.page("/_auth/account/passkeys").await.text();
    assert!(page.contains("Soft key"), "{page}");
    Setup {
        s,
        origin,
        rp_id: "localhost",
        key,
        handle,
    }
}

/// Runs a passwordless sign-in on a fresh browser with `make` building the answer from the
/// request options.
async fn sign_in(s: &TestServer, make: impl FnOnce(&Value) -> String) -> (Browser, StatusCode) {
    let mut br = s.browser();
    let token = br.csrf("/_auth/login").await;
    let o = br
        .post_form("/_auth/login/passkey/options", &[("csrf_token", &token)])
        .await
        .json();
    let answer = make(&o);
    let r = br
        .post_form(
            "/_auth/login/passkey",
            &[
                ("csrf_token", &token),
                ("next", "/secure/page"),
                ("credential", &answer),
            ],
        )
        .await;
    (br, r.status)
}

/// The `amr` claim of the identity assertion the app receives for this browser.
async fn amr(br: &mut Browser) -> Value {
    let r = br.api("/app/x", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = r.echoed("x-auth-assertion");
    let payload = seen[0].split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    claims["amr"].clone()
}

/// Waits (bounded) for a `login_failed` row whose description is a passkey refusal saying `why`.
async fn refusal_logged(s: &TestServer, why: &str) {
    logged(s, "login_failed", why).await;
}

/// Waits (bounded: rows are written in the background) for an activity row of `kind` whose
/// description contains `why`.
async fn logged(s: &TestServer, kind: &str, why: &str) {
    for _ in 0..100 {
        let rows = s.activity().await;
        if rows.iter().any(|r| {
            r.activity_type == kind
                && r.activity_description.as_deref().is_some_and(|d| {
                    d.contains(why) && (kind != "login_failed" || d.starts_with("Passkey refused"))
                })
        }) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no {kind} row saying {why:?}");
}

async fn register_then_sign_in_with_passkey_alone(b: Backend) {
    let Setup {
        s,
        origin,
        rp_id,
        mut key,
        handle,
    } = setup(b).await;
    let (mut br, status) = sign_in(&s, |o| key.assert(o, &origin, rp_id, &handle, true)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let page = br.page("/secure/page").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("<strong>pat</strong>"));
    assert_eq!(amr(&mut br).await, json!(["hwk", "user"]));

    // Without user verification the passkey is one factor, and the user's passkeys are their
    // second factor: with no code step to follow, it signs nobody in.
    let (mut br, status) = sign_in(&s, |o| key.assert(o, &origin, rp_id, &handle, false)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_ne!(br.page("/app/").await.status, StatusCode::OK);
    logged(&s, "login_failed", "no user verification").await;

    // A password sign-in now leads to the second step, which offers the passkey.
    let mut pw = s.browser();
    let token = pw.csrf("/_auth/login").await;
    let r = pw
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", &token),
                ("username", "pat"),
                ("password", PASSWORD),
                ("next", "/secure/page"),
            ],
        )
        .await;
    assert_eq!(r.header("location"), Some("/_auth/login/2fa"));
    let step = pw.page("/_auth/login/2fa").await.text();
    assert!(step.contains("id=\"passkey-2fa\""), "{step}");
    let o = pw
        .post_form(
            "/_auth/login/2fa/passkey/options",
            &[("csrf_token", &token)],
        )
        .await
        .json();
    let answer = key.assert(&o, &origin, rp_id, &handle, false);
    let r = pw
        .post_form(
            "/_auth/login/2fa/passkey",
            &[("csrf_token", &token), ("credential", &answer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(pw.page("/secure/page").await.status, StatusCode::OK);
    assert_eq!(amr(&mut pw).await, json!(["pwd", "hwk"]));
    // The account page counts the passkey as the second factor it is.
    let account = pw.page("/_auth/account").await.text();
    assert!(account.contains("On: 1 passkey."), "{account}");

    // An admin's 2FA reset removes the passkey: it no longer signs in.
    let user = s
        .app()
        .accounts
        .get_by_username("pat")
        .await
        .unwrap()
        .unwrap();
    s.app().accounts.reset_twofa(user.id, None).await.unwrap();
    assert!(s.app().accounts.passkeys(user.id).await.unwrap().is_empty());
    let (_, status) = sign_in(&s, |o| key.assert(o, &origin, rp_id, &handle, true)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    refusal_logged(&s, "not registered").await;
    let mut after = s.browser();
    after.login("pat", PASSWORD).await;
    let account = after.page("/_auth/account").await.text();
    assert!(account.contains("id=\"twofa-status\">Off."), "{account}");
}

async fn refusals_are_answered_and_logged(b: Backend) {
    let Setup {
        s,
        origin,
        rp_id,
        mut key,
        handle,
    } = setup(b).await;

    let (_, status) = sign_in(&s, |o| {
        key.assert(o, "http://evil.localhost:1", rp_id, &handle, true)
    })
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    refusal_logged(&s, "origin").await;

    let (_, status) = sign_in(&s, |o| {
        key.assert(o, &origin, "evil.example", &handle, true)
    })
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    refusal_logged(&s, "relying party id").await;

    // A good answer works once; the same answer again is a replay.
    let mut kept = String::new();
    let (_, status) = sign_in(&s, |o| {
        kept = key.assert(o, &origin, rp_id, &handle, true);
        kept.clone()
    })
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, status) = sign_in(&s, |_| kept.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    refusal_logged(&s, "no such ceremony").await;

    // The counter must rise: a cloned authenticator behind the last one is refused.
    key.counter = 10;
    let (_, status) = sign_in(&s, |o| key.assert(o, &origin, rp_id, &handle, true)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    key.counter = 3;
    let (_, status) = sign_in(&s, |o| key.assert(o, &origin, rp_id, &handle, true)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    refusal_logged(&s, "counter went backwards").await;

    // A key the server never saw.
    let mut stranger = SoftKey::new();
    let (_, status) = sign_in(&s, |o| stranger.assert(o, &origin, rp_id, &handle, true)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    refusal_logged(&s, "not registered").await;
}

async fn admin_lists_and_removes_and_old_sessions_need_the_password(b: Backend) {
    let Setup {
        s,
        origin,
        rp_id,
        mut key,
        handle,
    } = setup(b).await;
    let user = s
        .app()
        .accounts
        .get_by_username("pat")
        .await
        .unwrap()
        .unwrap();

    // A session older than 10 minutes must give the password to add or remove a passkey.
    let (mut br, status) = sign_in(&s, |o| key.assert(o, &origin, rp_id, &handle, true)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // In steps, each with a request, so the session does not idle out meanwhile.
    for _ in 0..3 {
        s.clock.advance(chrono::Duration::minutes(4));
        let r = br.page("/_auth/account").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.header("location"));
    }
    let token = br.csrf("/_auth/account/passkeys").await;
    let r = br
        .post_form("/_auth/account/passkeys/options", &[("csrf_token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = br
        .post_form(
            "/_auth/account/passkeys/options",
            &[("csrf_token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let pk = s.app().accounts.passkeys(user.id).await.unwrap()[0].id;
    let r = br
        .post_form(
            "/_auth/account/passkeys/remove",
            &[("csrf_token", &token), ("passkey_id", &pk.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(s.app().accounts.passkeys(user.id).await.unwrap().len(), 1);

    // The admin API lists the passkey (never its key) and removes it.
    let (_, t) = admin(&s, "ada").await;
    let mut api = s.browser();
    let path = format!("/_auth/api/users/{}/passkeys", user.id);
    let r = call(&mut api, Method::GET, &path, Some(&t), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let list = r.json();
    assert_eq!(list["passkeys"][0]["name"], json!("Soft key"));
    assert!(!r.text().contains(&B64.encode(&key.id)));
    // The console's user page lists it too, with a remove button.
    let mut console = s.browser();
    console.login("ada", PASSWORD).await;
    let page = console
        .page(&format!("/_auth/admin/users/{}", user.id))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("Soft key"), "{html}");
    assert!(html.contains(&format!("/passkeys/{pk}/remove")), "{html}");
    let one = format!("{path}/{pk}");
    let r = call(&mut api, Method::DELETE, &one, Some(&t), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(&mut api, Method::DELETE, &one, Some(&t), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&mut api, Method::GET, &path, Some(&t), None).await;
    assert_eq!(r.json()["passkeys"], json!([]));
    logged(&s, "passkey_removed", "removed by an administrator").await;
}

async fn a_ceremony_started_on_one_instance_finishes_on_another(b: Backend) {
    let Setup {
        s,
        origin,
        rp_id,
        mut key,
        handle,
    } = setup(b).await;
    let other = s.second_on_same_localhost(ROUTES).await;
    // Options from the first instance, the answer to the second (a round-robin balancer).
    let mut first = s.browser();
    let token = first.csrf("/_auth/login").await;
    let o = first
        .post_form("/_auth/login/passkey/options", &[("csrf_token", &token)])
        .await
        .json();
    let answer = key.assert(&o, &origin, rp_id, &handle, true);
    let mut second = other.browser();
    let token = second.csrf("/_auth/login").await;
    let r = second
        .post_form(
            "/_auth/login/passkey",
            &[
                ("csrf_token", &token),
                ("next", "/secure/page"),
                ("credential", &answer),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(second.page("/secure/page").await.status, StatusCode::OK);
    // Taken once: the same answer on the first instance is a replay.
    let token = first.csrf("/_auth/login").await;
    let r = first
        .post_form(
            "/_auth/login/passkey",
            &[
                ("csrf_token", &token),
                ("next", "/"),
                ("credential", &answer),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
