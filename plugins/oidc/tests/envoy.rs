//! Single sign-on end to end: real Envoy 1.40 running target/plugins/oidc.wasm
//! in front of an echo upstream, the real OpenID provider `oidc-provider`
//! (npm, installed by scripts/install-test-deps) on loopback, and a scripted
//! browser that follows redirects, keeps cookies per host and submits the
//! provider's login, consent and logout forms.
//!
//! Host names are resolved by the browser itself: `app.test` is Envoy's
//! listener, `idp.test` the provider; Envoy reaches the provider through
//! the cluster `idp`.

use host_test_harness::envoy::{
    self, Bootstrap, EchoUpstream, Envoy, EnvoyOptions, ExtraCluster, WasmFilter,
};
use host_test_harness::fixture::{Outcome, Request};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const APP: &str = "app.test";
const IDP: &str = "idp.test";
const SESSION_MAX_AGE_SECS: u64 = 16;

fn root() -> PathBuf {
    envoy::workspace_root().expect("run inside the Palisade workspace")
}

fn module() -> PathBuf {
    let m = root().join("target/plugins/oidc.wasm");
    assert!(
        m.exists(),
        "{} is missing: run scripts/build first",
        m.display()
    );
    m
}

/// The provider process; killed by PID when dropped.
struct IdentityProvider {
    child: Child,
    port: u16,
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl IdentityProvider {
    fn start() -> IdentityProvider {
        let dir = root().join("target/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider/package.json").exists(),
            "oidc-provider is not installed: run scripts/install-test-deps"
        );
        // ESM resolves `oidc-provider` from the script's own folder.
        let script = dir.join(format!("palisade-test-provider-{}.mjs", std::process::id()));
        std::fs::write(&script, include_str!("provider/provider.mjs")).unwrap();
        let port = free_port();
        let mut child = Command::new("node")
            .arg(&script)
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_ISSUER", format!("http://{IDP}"))
            .env("OIDC_APP", format!("http://{APP}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is on PATH (scripts/install-test-deps checks)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
            }
        });
        let provider = IdentityProvider { child, port };
        rx.recv_timeout(Duration::from_secs(20))
            .expect("oidc-provider did not start within 20 s");
        let _ = std::fs::remove_file(&script);
        provider
    }
}

fn filter_config() -> String {
    basic_client_config().to_string()
}

fn basic_client_config() -> serde_json::Value {
    serde_json::json!({
        "issuer": format!("http://{IDP}"),
        "provider_cluster": "idp",
        "client_id": "palisade",
        "client_secret": "palisade-test-secret",
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uri": format!("http://{APP}/oauth2/callback"),
        "scopes": ["openid", "profile"],
        "cookie": {"secure": false},
        "session_keys": {"current": "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho="},
        "session_max_age": format!("{SESSION_MAX_AGE_SECS}s"),
        "refresh_before_expiry": "1s",
        "logout_path": "/logout",
        "post_logout_redirect_uri": format!("http://{APP}/bye"),
        "pass_through": [{"paths": [{"exact": "/healthz"}, {"exact": "/bye"}]}],
        "strip_headers": ["x-user"]
    })
}

/// rbac after oidc: /admin/* is denied to members of `staff`, read from
/// the claims oidc hands off in `palisade.identity`.
fn rbac_filter() -> WasmFilter {
    let m = root().join("target/plugins/rbac.wasm");
    assert!(
        m.exists(),
        "{} is missing: run scripts/build first",
        m.display()
    );
    let config = serde_json::json!({"policies": [{
        "name": "no-staff-in-admin", "action": "DENY",
        "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}],
                   "when": [{"key": "request.auth.claims[groups]", "values": ["staff"]}]}]
    }]});
    WasmFilter::new("palisade.rbac", m)
        .root_id("rbac")
        .config(config.to_string())
}

/// Cookies of one host (name → value).
type Jar = BTreeMap<String, String>;

/// A scripted browser.
struct Browser {
    hosts: HashMap<&'static str, SocketAddr>,
    jars: HashMap<String, Jar>,
    /// Every URL requested, in order.
    visited: Vec<String>,
    /// The app's cookies as they were when the last callback was sent.
    before_callback: Option<Jar>,
}

fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

fn header<'a>(o: &'a Outcome, name: &str) -> Option<&'a str> {
    o.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn text(o: &Outcome) -> String {
    String::from_utf8_lossy(&o.body).into_owned()
}

impl Browser {
    fn new(envoy: SocketAddr, idp_port: u16) -> Browser {
        let mut hosts = HashMap::new();
        hosts.insert(APP, envoy);
        hosts.insert(IDP, SocketAddr::from(([127, 0, 0, 1], idp_port)));
        Browser {
            hosts,
            jars: HashMap::new(),
            visited: Vec::new(),
            before_callback: None,
        }
    }

    fn jar(&mut self, host: &str) -> &mut Jar {
        self.jars.entry(host.to_string()).or_default()
    }

    /// One request, no redirect following; cookies sent and stored.
    fn request(
        &mut self,
        method: &str,
        url: &str,
        body: Option<String>,
        extra: &[(&str, &str)],
    ) -> Outcome {
        self.visited.push(url.to_string());
        let (host, path) = split_url(url);
        if host == APP && path.starts_with("/oauth2/callback?") {
            self.before_callback = Some(self.jar(APP).clone());
        }
        let addr = *self
            .hosts
            .get(host.as_str())
            .unwrap_or_else(|| panic!("unknown host {host}"));
        let mut headers: Vec<(String, String)> = extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let cookies = self
            .jar(&host)
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>();
        if !cookies.is_empty() {
            headers.push(("cookie".into(), cookies.join("; ")));
        }
        if body.is_some() {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        let out = envoy::send(
            addr,
            &Request {
                method: method.into(),
                path,
                authority: host.clone(),
                headers,
                body,
                source: None,
            },
        )
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        for (n, v) in &out.headers {
            if n != "set-cookie" {
                continue;
            }
            let Some((name, value)) = v.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let lower = v.to_ascii_lowercase();
            let expired = lower.contains("max-age=0") || lower.contains("expires=thu, 01 jan 1970");
            let jar = self.jar(&host);
            if expired || value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_string(), value.to_string());
            }
        }
        out
    }

    /// Requests `url` and follows redirects (a POST becomes a GET).
    fn follow(
        &mut self,
        method: &str,
        url: &str,
        body: Option<String>,
        extra: &[(&str, &str)],
    ) -> (Outcome, String) {
        let mut current = url.to_string();
        let mut out = self.request(method, &current, body, extra);
        for _ in 0..20 {
            if !(300..400).contains(&out.status) {
                return (out, current);
            }
            let location = header(&out, "location")
                .expect("a redirect has a location")
                .to_string();
            current = if location.starts_with("http://") {
                location
            } else {
                format!("http://{}{location}", split_url(&current).0)
            };
            out = self.request("GET", &current, None, extra);
        }
        panic!("more than 20 redirects from {url}");
    }

    /// Submits the first form of `page` (at `url`) with its hidden fields
    /// plus `fields`; follows redirects.
    fn submit(&mut self, page: &str, url: &str, fields: &[(&str, &str)]) -> (Outcome, String) {
        let form = &page[page.find("<form").expect("the page has a form")..];
        let action = attr(form, "action").expect("the form has an action");
        let action = if action.starts_with("http://") {
            action
        } else {
            format!("http://{}{action}", split_url(url).0)
        };
        let form_end = form.find("</form>").unwrap_or(form.len());
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut rest = &form[..form_end];
        while let Some(i) = rest.find("<input") {
            rest = &rest[i + 6..];
            let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
            if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
                pairs.push((n, v));
            }
        }
        pairs.extend(fields.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let body = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", oidc::urlenc::encode(n), oidc::urlenc::encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.follow("POST", &action, Some(body), &[])
    }

    /// Goes to `url` and logs in as `user` wherever the provider asks
    /// (login, then consent). Returns the final response, its URL and how
    /// many provider forms were submitted.
    fn login(&mut self, url: &str, user: &str) -> (Outcome, String, usize) {
        let (mut out, mut at) = self.follow("GET", url, None, &[]);
        let mut forms = 0;
        while split_url(&at).0 == IDP && text(&out).contains("<form") {
            assert!(forms < 4, "the provider keeps asking: {}", text(&out));
            let page = text(&out);
            let fields: &[(&str, &str)] = if page.contains("name=\"login\"") {
                &[("login", user), ("password", "any")]
            } else {
                &[]
            };
            (out, at) = self.submit(&page, &at, fields);
            forms += 1;
        }
        (out, at, forms)
    }

    fn session_chunks(&mut self) -> usize {
        self.jar(APP)
            .keys()
            .filter(|k| k.starts_with("palisade_session."))
            .count()
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let end = tag[i..].find('"')?;
    Some(tag[i..i + end].replace("&amp;", "&"))
}

/// The upstream's view of the request (the echo body).
fn upstream_header(o: &Outcome, name: &str) -> Option<String> {
    let up = o.upstream.as_ref()?;
    up.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn code(o: &Outcome) -> String {
    serde_json::from_slice::<serde_json::Value>(&o.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

const API: &[(&str, &str)] = &[("accept", "application/json")];

#[test]
fn single_sign_on_through_envoy_against_oidc_provider() {
    let idp = IdentityProvider::start();
    let upstream = EchoUpstream::start().unwrap();
    let bootstrap = Bootstrap::new(
        vec![
            WasmFilter::new("palisade.oidc", module())
                .root_id("oidc")
                .config(filter_config()),
            rbac_filter(),
        ],
        upstream.addr(),
    )
    .cluster(ExtraCluster::new("idp", "127.0.0.1", idp.port));
    let envoy = Envoy::start_bootstrap(&bootstrap, &EnvoyOptions::default()).expect("Envoy starts");
    let app = |path: &str| format!("http://{APP}{path}");
    let mut browser = Browser::new(envoy.listener_addr(), idp.port);

    // Programs get 401 at once; browsers can be sent to log in once
    // discovery has loaded (503 until then).
    let o = browser.request("GET", &app("/api/ready"), None, API);
    assert_eq!(
        (o.status, code(&o).as_str()),
        (401, "oidc_login_required"),
        "{}",
        text(&o)
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let o =
            Browser::new(envoy.listener_addr(), idp.port).request("GET", &app("/ready"), None, &[]);
        if o.status != 503 {
            assert_eq!(o.status, 302, "{}", text(&o));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "provider discovery did not finish: {}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Pass-through: no session needed, identity headers still stripped.
    let o = browser.request(
        "GET",
        &app("/healthz"),
        None,
        &[("x-user", "admin"), ("authorization", "Bearer forged")],
    );
    assert_eq!(o.status, 200);
    assert_eq!(upstream_header(&o, "x-user"), None);
    assert_eq!(upstream_header(&o, "authorization"), None);

    // Login through the provider's real pages.
    let (o, at, forms) = browser.login(&app("/app/page?x=1"), "alice");
    assert_eq!(
        o.status,
        200,
        "login ended at {at}: {}\n{}",
        text(&o),
        envoy.log()
    );
    assert_eq!(at, app("/app/page?x=1"), "back where the login started");
    assert_eq!(forms, 2, "login and consent forms");
    assert_eq!(o.upstream.as_ref().unwrap().path, "/app/page?x=1");
    let first_bearer = upstream_header(&o, "authorization").expect("the access token is forwarded");
    assert!(first_bearer.starts_with("Bearer "));
    assert!(upstream_header(&o, "cookie").is_none_or(|c| !c.contains("palisade_session")));
    let callback = browser
        .visited
        .iter()
        .find(|u| u.contains("/oauth2/callback?"))
        .cloned()
        .expect("the provider called back");
    assert_eq!(browser.session_chunks(), 1);
    let alice_jar = browser.jar(APP).clone();
    let alice_login = Instant::now();
    let alice_callback_jar = browser.before_callback.clone().unwrap();
    assert!(alice_callback_jar.contains_key("palisade_session_login"));

    // Access with the session, forged identity headers stripped.
    let o = browser.request("GET", &app("/app/other"), None, &[("x-user", "admin")]);
    assert_eq!(o.status, 200);
    assert_eq!(upstream_header(&o, "x-user"), None);
    assert!(upstream_header(&o, "authorization").is_some());
    // rbac reads alice's claims (groups: staff) from the hand-off.
    let o = browser.request("GET", &app("/admin/panel"), None, &[]);
    assert_eq!(o.status, 403, "rbac denies staff in /admin: {}", text(&o));

    // A tampered session cookie is refused.
    let mut tampered = Browser::new(envoy.listener_addr(), idp.port);
    let mut jar = alice_jar.clone();
    let v = jar.get_mut("palisade_session.0").unwrap();
    let mid = v.len() / 2;
    let flipped = if &v[mid..mid + 1] == "A" { "B" } else { "A" };
    v.replace_range(mid..mid + 1, flipped);
    tampered.jars.insert(APP.into(), jar);
    let o = tampered.request("GET", &app("/app"), None, API);
    assert_eq!((o.status, code(&o).as_str()), (401, "oidc_session_invalid"));
    let o = tampered.request("GET", &app("/app"), None, &[]);
    assert_eq!(
        o.status, 302,
        "a browser with a tampered cookie is sent to log in again"
    );
    assert!(header(&o, "location")
        .unwrap()
        .starts_with(&format!("http://{IDP}/auth?")));

    // Replayed and missing state.
    let mut replay = Browser::new(envoy.listener_addr(), idp.port);
    let o = replay.request("GET", &callback, None, &[]);
    assert_eq!(
        (o.status, code(&o).as_str()),
        (400, "oidc_login_state_missing"),
        "{}",
        text(&o)
    );
    let o = replay.request("GET", &app("/oauth2/callback?code=abc"), None, &[]);
    assert_eq!((o.status, code(&o).as_str()), (400, "oidc_state_missing"));

    // The callback replayed with the login cookie it carried: refused.
    replay.jars.insert(APP.into(), alice_callback_jar);
    let o = replay.request("GET", &callback, None, &[]);
    assert_eq!(
        (o.status, code(&o).as_str()),
        (400, "oidc_state_replayed"),
        "{}",
        text(&o)
    );

    // A wrong nonce: the browser's authorization request is altered on its
    // way to the provider, so the ID token carries another nonce.
    let mut evil = Browser::new(envoy.listener_addr(), idp.port);
    let o = evil.request("GET", &app("/app"), None, &[]);
    assert_eq!(o.status, 302);
    let auth = header(&o, "location").unwrap().to_string();
    let nonce_at = auth.find("&nonce=").unwrap() + 7;
    let nonce_end = auth[nonce_at..]
        .find('&')
        .map_or(auth.len(), |e| nonce_at + e);
    let altered = format!("{}injected{}", &auth[..nonce_at], &auth[nonce_end..]);
    let (o, at, _) = evil.login(&altered, "mallory");
    assert_eq!(
        (o.status, code(&o).as_str()),
        (401, "oidc_nonce_mismatch"),
        "at {at}: {}",
        text(&o)
    );

    // Refresh after the access token (4 s at the provider) expires.
    std::thread::sleep(Duration::from_secs(4));
    let o = browser.request("GET", &app("/app/after-expiry"), None, &[]);
    assert_eq!(o.status, 200, "{}", text(&o));
    let refreshed = upstream_header(&o, "authorization").unwrap();
    assert_ne!(refreshed, first_bearer, "a new access token after refresh");
    assert!(o
        .headers
        .iter()
        .any(|(n, v)| n == "set-cookie" && v.starts_with("palisade_session.0=")));
    let o = browser.request("GET", &app("/app/again"), None, &[]);
    assert_eq!(
        upstream_header(&o, "authorization").unwrap(),
        refreshed,
        "the refreshed session is kept"
    );

    // RP-initiated logout: cleared locally, ended at the provider, back at /bye.
    let (o, at) = browser.follow("GET", &app("/logout"), None, &[]);
    let (o, at) = if split_url(&at).0 == IDP && text(&o).contains("op.logoutForm") {
        browser.submit(&text(&o), &at, &[("logout", "yes")])
    } else {
        (o, at)
    };
    assert_eq!(
        (o.status, at.as_str()),
        (200, app("/bye").as_str()),
        "{}",
        text(&o)
    );
    assert_eq!(browser.session_chunks(), 0);
    let o = browser.request("GET", &app("/app"), None, API);
    assert_eq!((o.status, code(&o).as_str()), (401, "oidc_login_required"));

    // Login again: the provider's session ended, so it asks again.
    let (o, _, forms) = browser.login(&app("/app/back"), "alice");
    assert_eq!(o.status, 200);
    assert!(forms >= 1, "the provider asked for the login again");

    // A session over 4 KB (a large ID token) is split and reassembled.
    let mut big = Browser::new(envoy.listener_addr(), idp.port);
    let (o, at, _) = big.login(&app("/big"), "big-bob");
    assert_eq!(o.status, 200, "at {at}: {}", text(&o));
    let chunks = big.session_chunks();
    assert!(chunks >= 2, "{chunks} chunk(s)");
    let total: usize = big
        .jar(APP)
        .iter()
        .filter(|(k, _)| k.starts_with("palisade_session."))
        .map(|(_, v)| v.len())
        .sum();
    assert!(total > 4096, "{total} bytes of session");
    let o = big.request("GET", &app("/big/again"), None, &[]);
    assert_eq!(o.status, 200);
    let o = big.request("GET", &app("/admin/panel"), None, &[]);
    assert_eq!(o.status, 200, "big-bob is not in staff: rbac allows /admin");

    // An expired session (older than session_max_age) is refused.
    let mut old = Browser::new(envoy.listener_addr(), idp.port);
    old.jars.insert(APP.into(), alice_jar);
    let max_age = Duration::from_secs(SESSION_MAX_AGE_SECS + 1);
    if let Some(left) = max_age.checked_sub(alice_login.elapsed()) {
        std::thread::sleep(left);
    }
    let o = old.request("GET", &app("/app"), None, API);
    assert_eq!(
        (o.status, code(&o).as_str()),
        (401, "oidc_session_expired"),
        "{}",
        text(&o)
    );

    let stats = envoy.stats_prometheus().unwrap();
    let logins: f64 = stats
        .lines()
        .find(|l| l.contains("palisade_oidc_logins") && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(logins >= 3.0, "logins metric {logins}");
    envoy.stop();
    drop(upstream);
}
/// The same login with `client_secret_post` (the second registered client).
#[test]
fn client_secret_post_login_through_envoy() {
    let idp = IdentityProvider::start();
    let upstream = EchoUpstream::start().unwrap();
    let mut config = basic_client_config();
    config["client_id"] = "palisade-post".into();
    config["client_secret"] = "palisade-test-post-secret".into();
    config["token_endpoint_auth_method"] = "client_secret_post".into();
    let bootstrap = Bootstrap::new(
        vec![WasmFilter::new("palisade.oidc", module())
            .root_id("oidc")
            .config(config.to_string())],
        upstream.addr(),
    )
    .cluster(ExtraCluster::new("idp", "127.0.0.1", idp.port));
    let envoy = Envoy::start_bootstrap(&bootstrap, &EnvoyOptions::default()).expect("Envoy starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let o = Browser::new(envoy.listener_addr(), idp.port).request(
            "GET",
            &format!("http://{APP}/ready"),
            None,
            &[],
        );
        if o.status == 302 {
            break;
        }
        assert!(o.status == 503 && Instant::now() < deadline, "{}", text(&o));
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut browser = Browser::new(envoy.listener_addr(), idp.port);
    let (o, at, _) = browser.login(&format!("http://{APP}/post"), "carol");
    assert_eq!(o.status, 200, "at {at}: {}\n{}", text(&o), envoy.log());
    assert!(upstream_header(&o, "authorization").is_some_and(|a| a.starts_with("Bearer ")));
    envoy.stop();
}

#[test]
fn shipped_example_validates() {
    let out = envoy::validate_file(
        &root().join("envoy-examples/oidc.yaml"),
        &EnvoyOptions::default(),
    )
    .expect("envoy --mode validate accepts envoy-examples/oidc.yaml");
    assert!(out.contains("OK"), "{out}");
}
