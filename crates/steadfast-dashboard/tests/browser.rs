//! End to end in headless Chromium: the list, a process page with the
//! current line highlighted, a signal sent from the page moving the process
//! on without a reload, escaping, and the screenshot in `docs/`; a
//! DNS-rebound name refused, and the login form, with the token in no
//! address and no history entry.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages
//! `chromium` and `chromium-driver`); skipped with a notice when they are
//! missing, unless `STEADFAST_REQUIRE_BROWSER=1`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use steadfast::rusqlite;
use steadfast::{Backend, HostBuilder, Process, SqliteStore, Status, StepFailed};
use steadfast_dashboard::DashboardOptions;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const XSS: &str = "<img src=x onerror=\"window.__xss=1\">";

#[steadfast::process]
async fn signup(p: Process, email: String) -> Result<String, StepFailed> {
    let email = p.get("email saved", move || email).await;
    let user = p
        .step("registered", || async { Ok::<_, std::io::Error>(42_u64) })
        .await?;
    let _secret = p.uuid("secret generated").await;
    p.step("verification mail sent", || async {
        Ok::<_, std::io::Error>(())
    })
    .await?;
    let code: String = p.wait("email verified").await;
    p.step("activated", || async { Ok::<_, std::io::Error>(true) })
        .await?;
    Ok(format!("user {user} <{email}> verified with {code}"))
}

fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let required = std::env::var("STEADFAST_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "STEADFAST_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install -y chromium chromium-driver)"
        );
        eprintln!(
            "NOTICE: skipping the browser test: {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install -y chromium chromium-driver; set STEADFAST_REQUIRE_BROWSER=1 to fail instead)"
        );
    }
    present
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills chromedriver when the test ends, however it ends.
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium driven through chromedriver, both stopped when dropped.
struct Browser {
    client: fantoccini::Client,
    _driver: Driver,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium
    /// session with its own profile and `extra` arguments.
    async fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let driver = Driver(
            std::process::Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        until("chromedriver", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1200,800".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            client,
            _driver: driver,
            profile,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_page_in_chromium() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("signup", signup)
        .poll_interval(Duration::from_millis(50))
        .build();
    host.spawn("signup", "signup-ada", "ada@example.com")
        .await
        .unwrap();
    host.spawn("signup", "signup-evil", XSS).await.unwrap();
    for id in ["signup-ada", "signup-evil"] {
        until("the process to wait", || async {
            host.status(id).await.unwrap().status == Status::Suspended
        })
        .await;
    }
    let record = host.status("signup-ada").await.unwrap();
    let wait_line = record.parked_at.first().expect("parked at the wait").line;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let options = DashboardOptions::default().poll_interval(Duration::from_millis(200));
    let server = tokio::spawn(steadfast_dashboard::serve_on(
        listener,
        Arc::clone(&store),
        options,
    ));

    let browser = Browser::start(&[]).await;
    let client = browser.client.clone();

    let result = async {
        // The list links to the process.
        client.goto(&format!("{base}/")).await?;
        client
            .wait()
            .for_element(Locator::Css("tr[data-id='signup-ada'] a[href^='/process']"))
            .await?
            .click()
            .await?;

        // The XSS attempt in another process's input does not run.
        client
            .goto(&format!("{base}/process?id=signup-evil"))
            .await?;
        client
            .wait()
            .for_element(Locator::Css("tr.current"))
            .await?;
        let header = client
            .find(Locator::Css("section.header"))
            .await?
            .text()
            .await?;
        assert!(
            header.contains("<img src=x onerror="),
            "the input is shown as text: {header}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let xss = client
            .execute("return window.__xss === undefined", vec![])
            .await?;
        assert_eq!(xss, serde_json::Value::Bool(true), "injected markup ran");

        client
            .goto(&format!("{base}/process?id=signup-ada"))
            .await?;
        let current = client
            .wait()
            .for_element(Locator::Css(".sources tr.current"))
            .await?;
        let line = current.attr("data-line").await?.unwrap_or_default();
        assert_eq!(
            line,
            wait_line.to_string(),
            "the highlighted line is the wait"
        );
        let text = current.text().await?;
        assert!(text.contains("p.wait(\"email verified\")"), "{text}");
        assert!(
            text.contains("waits for"),
            "the wait is shown at the line: {text}"
        );
        let done = client
            .find_all(Locator::Css(".sources td.mark .ok"))
            .await?;
        assert_eq!(done.len(), 4, "four finished steps are checked");
        // The README's screenshot: refreshed with STEADFAST_UPDATE_SCREENSHOT=1,
        // otherwise written under target/ so a test run changes no tracked file.
        let png = client.screenshot().await?;
        let path = if std::env::var("STEADFAST_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
            std::path::PathBuf::from("../../docs/dashboard.png")
        } else {
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
        };
        std::fs::write(&path, png).expect("screenshot written");

        // Send the signal from the page; the page must not reload.
        client.execute("window.__marker = 42", vec![]).await?;
        let name = client
            .find(Locator::Css("form.signal input[name='name']"))
            .await?;
        name.clear().await?;
        name.send_keys("email verified").await?;
        let payload = client
            .find(Locator::Css("form.signal textarea[name='payload']"))
            .await?;
        payload.clear().await?;
        payload.send_keys("\"123456\"").await?;
        client
            .find(Locator::Css("form.signal button[type='submit']"))
            .await?
            .click()
            .await?;
        client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css("section.header[data-status='completed']"))
            .await?;
        let marker = client.execute("return window.__marker", vec![]).await?;
        assert_eq!(marker, serde_json::json!(42), "the page was reloaded");
        let result = client
            .find(Locator::Css("form.signal output.result"))
            .await?
            .text()
            .await?;
        assert!(result.contains("sent"), "{result}");
        let none = client.find_all(Locator::Css(".sources tr.current")).await?;
        assert!(none.is_empty(), "a completed process stands nowhere");
        let entries = client.find_all(Locator::Css("li.entry")).await?;
        assert_eq!(entries.len(), 6);
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    server.abort();
    host.shutdown().await;
    result.expect("the browser steps");
    assert_eq!(
        store
            .get(&steadfast::ProcessId::new("signup-ada").unwrap())
            .await
            .unwrap()
            .status,
        Status::Completed
    );
}

/// An access token long enough for any address.
const TOKEN: &str = "0123456789abcdef0123456789abcdef-browser";

async fn idle(_p: Process, _input: String) -> Result<String, StepFailed> {
    Ok(String::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_form_and_rebinding_in_chromium() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("idle", idle)
        .build_client();
    host.spawn("idle", "p1", "x").await.unwrap();

    // One dashboard without a token (loopback, as by default), one with.
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = open.local_addr().unwrap().port();
    let open_server = tokio::spawn(steadfast_dashboard::serve_on(
        open,
        Arc::clone(&store),
        DashboardOptions::default(),
    ));
    let guarded = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", guarded.local_addr().unwrap());
    let guarded_server = tokio::spawn(steadfast_dashboard::serve_on(
        guarded,
        Arc::clone(&store),
        DashboardOptions::default().token(Some(TOKEN.to_owned())),
    ));

    // The attacker's name resolves to 127.0.0.1, as after a rebinding.
    let browser = Browser::start(&[
        "--host-resolver-rules=MAP rebind.attacker.example 127.0.0.1",
        "--disable-features=HttpsUpgrades",
    ])
    .await;
    let client = browser.client.clone();
    let result = async {
        client
            .goto(&format!("http://rebind.attacker.example:{open_port}/"))
            .await?;
        let body = client.find(Locator::Css("body")).await?.text().await?;
        assert!(
            body.contains("421") && body.contains("DNS rebinding"),
            "a rebound name is refused: {body}"
        );
        let meta = client
            .find_all(Locator::Css("meta[name='csrf-token']"))
            .await?;
        assert!(meta.is_empty(), "no page, no CSRF token");
        // Under its own name the same dashboard answers.
        client
            .goto(&format!("http://127.0.0.1:{open_port}/"))
            .await?;
        client
            .wait()
            .for_element(Locator::Css("tr[data-id='p1']"))
            .await?;

        // With a token, opening a page shows the login form.
        let page = format!("{base}/process?id=p1");
        client.goto(&page).await?;
        let field = client
            .wait()
            .for_element(Locator::Css("form.login input[name='token']"))
            .await?;
        field.send_keys("not the token").await?;
        client
            .find(Locator::Css("form.login button[type='submit']"))
            .await?
            .click()
            .await?;
        let notice = client
            .wait()
            .for_element(Locator::Css("p.notice"))
            .await?
            .text()
            .await?;
        assert!(notice.contains("Wrong token"), "{notice}");
        client
            .find(Locator::Css("form.login input[name='token']"))
            .await?
            .send_keys(TOKEN)
            .await?;
        client
            .find(Locator::Css("form.login button[type='submit']"))
            .await?
            .click()
            .await?;
        client
            .wait()
            .for_element(Locator::Css("section.header[data-status='running']"))
            .await?;
        let url = client.current_url().await?;
        assert_eq!(url.as_str(), page, "back on the page asked for");
        // The session is invisible to scripts and is not the token.
        let seen = client.execute("return document.cookie", vec![]).await?;
        assert_eq!(seen, serde_json::json!(""), "HttpOnly");
        let cookie = client.get_named_cookie("steadfast_session").await?;
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
        assert!(!cookie.value().contains(TOKEN));
        // Every address this tab went through.
        let addresses = client
            .execute(
                "return performance.getEntriesByType('navigation').map(e => e.name)\
                 .concat([location.href, document.referrer])",
                vec![],
            )
            .await?;
        assert!(!addresses.to_string().contains(TOKEN), "{addresses}");
        // Logging out ends the session: the page asks for the token again.
        client
            .find(Locator::Css("header.top form.logout button"))
            .await?
            .click()
            .await?;
        client
            .wait()
            .for_element(Locator::Css("form.login input[name='token']"))
            .await?;
        client.goto(&page).await?;
        client
            .wait()
            .for_element(Locator::Css("form.login input[name='token']"))
            .await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    open_server.abort();
    guarded_server.abort();
    result.expect("the browser steps");

    // The browser's history (written when it quits) has the page, and no
    // address with the token in it.
    let history = browser.profile.path().join("Default").join("History");
    let mut urls: Vec<String> = Vec::new();
    until("the browser to write its history", || {
        urls = read_history(&history).unwrap_or_default();
        let found = urls.iter().any(|u| u.contains("/process?id=p1"));
        async move { found }
    })
    .await;
    assert!(
        urls.iter().all(|u| !u.contains(TOKEN)),
        "the token is in the history: {urls:?}"
    );
}

/// The addresses in Chromium's history database, if it can be read yet.
fn read_history(path: &Path) -> Option<Vec<String>> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let mut query = db.prepare("SELECT url FROM urls").ok()?;
    let rows = query.query_map([], |row| row.get::<_, String>(0)).ok()?;
    rows.collect::<Result<Vec<_>, _>>().ok()
}
