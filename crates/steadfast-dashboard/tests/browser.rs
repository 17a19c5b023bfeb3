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
    let user = p.step("registered", || async { Ok(42_u64) }).await?;
    let _secret = p.uuid("secret generated").await;
    p.step("verification mail sent", || async { Ok(()) })
        .await?;
    let code: String = p.wait("email verified").await;
    p.step("activated", || async { Ok(true) }).await?;
    Ok(format!("user {user} <{email}> verified with {code}"))
}

/// A long function: its waits are far below the top of the source box.
#[steadfast::process]
async fn long_flow(p: Process, _input: String) -> Result<u32, StepFailed> {
    let mut sum = 0_u32;
    // Step 1 of the first half.
    sum += p.step("a01", || async { Ok(1_u32) }).await?;
    // Step 2 of the first half.
    sum += p.step("a02", || async { Ok(2_u32) }).await?;
    // Step 3 of the first half.
    sum += p.step("a03", || async { Ok(3_u32) }).await?;
    // Step 4 of the first half.
    sum += p.step("a04", || async { Ok(4_u32) }).await?;
    // Step 5 of the first half.
    sum += p.step("a05", || async { Ok(5_u32) }).await?;
    // Step 6 of the first half.
    sum += p.step("a06", || async { Ok(6_u32) }).await?;
    // Step 7 of the first half.
    sum += p.step("a07", || async { Ok(7_u32) }).await?;
    // Step 8 of the first half.
    sum += p.step("a08", || async { Ok(8_u32) }).await?;
    // Step 9 of the first half.
    sum += p.step("a09", || async { Ok(9_u32) }).await?;
    // Step 10 of the first half.
    sum += p.step("a10", || async { Ok(10_u32) }).await?;
    // Step 11 of the first half.
    sum += p.step("a11", || async { Ok(11_u32) }).await?;
    // Step 12 of the first half.
    sum += p.step("a12", || async { Ok(12_u32) }).await?;
    // Step 13 of the first half.
    sum += p.step("a13", || async { Ok(13_u32) }).await?;
    // Step 14 of the first half.
    sum += p.step("a14", || async { Ok(14_u32) }).await?;
    // Step 15 of the first half.
    sum += p.step("a15", || async { Ok(15_u32) }).await?;
    // Step 16 of the first half.
    sum += p.step("a16", || async { Ok(16_u32) }).await?;
    // Step 17 of the first half.
    sum += p.step("a17", || async { Ok(17_u32) }).await?;
    // Step 18 of the first half.
    sum += p.step("a18", || async { Ok(18_u32) }).await?;
    // Step 19 of the first half.
    sum += p.step("a19", || async { Ok(19_u32) }).await?;
    // Step 20 of the first half.
    sum += p.step("a20", || async { Ok(20_u32) }).await?;
    // Step 21 of the first half.
    sum += p.step("a21", || async { Ok(21_u32) }).await?;
    // Step 22 of the first half.
    sum += p.step("a22", || async { Ok(22_u32) }).await?;
    // Step 23 of the first half.
    sum += p.step("a23", || async { Ok(23_u32) }).await?;
    // Step 24 of the first half.
    sum += p.step("a24", || async { Ok(24_u32) }).await?;
    // Step 25 of the first half.
    sum += p.step("a25", || async { Ok(25_u32) }).await?;
    // Step 26 of the first half.
    sum += p.step("a26", || async { Ok(26_u32) }).await?;
    // Step 27 of the first half.
    sum += p.step("a27", || async { Ok(27_u32) }).await?;
    // Step 28 of the first half.
    sum += p.step("a28", || async { Ok(28_u32) }).await?;
    // Step 29 of the first half.
    sum += p.step("a29", || async { Ok(29_u32) }).await?;
    // Step 30 of the first half.
    sum += p.step("a30", || async { Ok(30_u32) }).await?;
    // Step 31 of the first half.
    sum += p.step("a31", || async { Ok(31_u32) }).await?;
    // Step 32 of the first half.
    sum += p.step("a32", || async { Ok(32_u32) }).await?;
    // Step 33 of the first half.
    sum += p.step("a33", || async { Ok(33_u32) }).await?;
    // Step 34 of the first half.
    sum += p.step("a34", || async { Ok(34_u32) }).await?;
    // Step 35 of the first half.
    sum += p.step("a35", || async { Ok(35_u32) }).await?;
    // Step 36 of the first half.
    sum += p.step("a36", || async { Ok(36_u32) }).await?;
    // Step 37 of the first half.
    sum += p.step("a37", || async { Ok(37_u32) }).await?;
    // Step 38 of the first half.
    sum += p.step("a38", || async { Ok(38_u32) }).await?;
    // Step 39 of the first half.
    sum += p.step("a39", || async { Ok(39_u32) }).await?;
    // Step 40 of the first half.
    sum += p.step("a40", || async { Ok(40_u32) }).await?;
    let first: u32 = p.wait("first").await;
    // Step 1 of the second half.
    sum += p.step("b01", || async { Ok(1_u32) }).await?;
    // Step 2 of the second half.
    sum += p.step("b02", || async { Ok(2_u32) }).await?;
    // Step 3 of the second half.
    sum += p.step("b03", || async { Ok(3_u32) }).await?;
    // Step 4 of the second half.
    sum += p.step("b04", || async { Ok(4_u32) }).await?;
    // Step 5 of the second half.
    sum += p.step("b05", || async { Ok(5_u32) }).await?;
    // Step 6 of the second half.
    sum += p.step("b06", || async { Ok(6_u32) }).await?;
    // Step 7 of the second half.
    sum += p.step("b07", || async { Ok(7_u32) }).await?;
    // Step 8 of the second half.
    sum += p.step("b08", || async { Ok(8_u32) }).await?;
    // Step 9 of the second half.
    sum += p.step("b09", || async { Ok(9_u32) }).await?;
    // Step 10 of the second half.
    sum += p.step("b10", || async { Ok(10_u32) }).await?;
    // Step 11 of the second half.
    sum += p.step("b11", || async { Ok(11_u32) }).await?;
    // Step 12 of the second half.
    sum += p.step("b12", || async { Ok(12_u32) }).await?;
    // Step 13 of the second half.
    sum += p.step("b13", || async { Ok(13_u32) }).await?;
    // Step 14 of the second half.
    sum += p.step("b14", || async { Ok(14_u32) }).await?;
    // Step 15 of the second half.
    sum += p.step("b15", || async { Ok(15_u32) }).await?;
    // Step 16 of the second half.
    sum += p.step("b16", || async { Ok(16_u32) }).await?;
    // Step 17 of the second half.
    sum += p.step("b17", || async { Ok(17_u32) }).await?;
    // Step 18 of the second half.
    sum += p.step("b18", || async { Ok(18_u32) }).await?;
    // Step 19 of the second half.
    sum += p.step("b19", || async { Ok(19_u32) }).await?;
    // Step 20 of the second half.
    sum += p.step("b20", || async { Ok(20_u32) }).await?;
    // Step 21 of the second half.
    sum += p.step("b21", || async { Ok(21_u32) }).await?;
    // Step 22 of the second half.
    sum += p.step("b22", || async { Ok(22_u32) }).await?;
    // Step 23 of the second half.
    sum += p.step("b23", || async { Ok(23_u32) }).await?;
    // Step 24 of the second half.
    sum += p.step("b24", || async { Ok(24_u32) }).await?;
    // Step 25 of the second half.
    sum += p.step("b25", || async { Ok(25_u32) }).await?;
    // Step 26 of the second half.
    sum += p.step("b26", || async { Ok(26_u32) }).await?;
    // Step 27 of the second half.
    sum += p.step("b27", || async { Ok(27_u32) }).await?;
    // Step 28 of the second half.
    sum += p.step("b28", || async { Ok(28_u32) }).await?;
    // Step 29 of the second half.
    sum += p.step("b29", || async { Ok(29_u32) }).await?;
    // Step 30 of the second half.
    sum += p.step("b30", || async { Ok(30_u32) }).await?;
    let second: u32 = p.wait("second").await;
    Ok(sum + first + second)
}

/// Saves a screenshot for the README: into `docs/` with
/// `STEADFAST_UPDATE_SCREENSHOT=1`, otherwise under `target/` so a test run
/// changes no tracked file.
async fn save_screenshot(
    client: &fantoccini::Client,
    name: &str,
) -> Result<(), fantoccini::error::CmdError> {
    let png = client.screenshot().await?;
    let path = if std::env::var("STEADFAST_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        std::path::Path::new("../../docs").join(name)
    } else {
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
    };
    std::fs::write(&path, png).expect("screenshot written");
    Ok(())
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
        save_screenshot(&client, "dashboard.png").await?;

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
        // First a payload the wait cannot read (a number, not a String):
        // the timeline lists it as rejected, with the reason, and the
        // process stays where it is.
        payload.clear().await?;
        payload.send_keys("123456").await?;
        client
            .find(Locator::Css("form.signal button[type='submit']"))
            .await?
            .click()
            .await?;
        let rejected = client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css("ol.timeline li.tl-rejected"))
            .await?;
        let text = rejected.text().await?;
        assert!(
            text.contains("email verified") && text.contains("123456"),
            "{text}"
        );
        rejected.find(Locator::Css(".tl-reason")).await?;
        let still = client
            .find(Locator::Css(".sources tr.current"))
            .await?
            .attr("data-line")
            .await?;
        assert_eq!(still, Some(wait_line.to_string()));
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
        // The timeline: spawned, six journal entries (the wait consumed
        // its signal), completed; every journal entry offers a rewind.
        let consumed = client
            .find_all(Locator::Css("ol.timeline li.tl-consumed"))
            .await?;
        assert_eq!(consumed.len(), 1);
        let done = client
            .find_all(Locator::Css("ol.timeline li.tl-completed"))
            .await?;
        assert_eq!(done.len(), 1);
        let rewinds = client
            .find_all(Locator::Css("ol.timeline form.rewind"))
            .await?;
        assert_eq!(rewinds.len(), 6);
        // The history screenshot: the timeline of the finished process.
        client
            .execute(
                "document.querySelector('section.timeline').scrollIntoView()",
                vec![],
            )
            .await?;
        save_screenshot(&client, "dashboard-history.png").await?;
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

/// Where the highlighted line is, against the source box it scrolls in:
/// `[row top, row bottom, box top (below its sticky head), box bottom,
/// data-line]`, or nothing without a highlighted line.
const MEASURE: &str = r#"
const row = document.querySelector('.sources tr.current');
if (!row) return null;
const box = row.closest('.source');
const r = row.getBoundingClientRect();
const b = box.getBoundingClientRect();
const head = box.querySelector('.source-head');
return [r.top, r.bottom, b.top + (head ? head.offsetHeight : 0), b.bottom, Number(row.dataset.line),
        window.steadfastLive.polls, window.innerHeight];
"#;

/// The highlighted row is wholly inside the visible part of its source box
/// and inside the window (and the box is taller than a few rows, so the
/// check means something);
/// returns the line and how many polls the page ran.
async fn line_in_view(client: &fantoccini::Client, when: &str) -> (u64, u64) {
    let v = client.execute(MEASURE, vec![]).await.unwrap();
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("{when}: no highlighted line"));
    let n = |i: usize| a[i].as_f64().unwrap();
    let (top, bottom, box_top, box_bottom) = (n(0), n(1), n(2), n(3));
    assert!(
        top >= box_top - 0.5 && bottom <= box_bottom + 0.5,
        "{when}: the highlighted line (y {top}..{bottom}) is outside the source box's visible part (y {box_top}..{box_bottom})"
    );
    assert!(
        box_bottom - box_top > 200.0,
        "{when}: the box is {box_top}..{box_bottom}"
    );
    assert!(
        top >= -0.5 && bottom <= n(6) + 0.5,
        "{when}: the highlighted line (y {top}..{bottom}) is outside the window (height {})",
        n(6)
    );
    (n(4) as u64, n(5) as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_highlighted_line_stays_in_view() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("long flow", long_flow)
        .poll_interval(Duration::from_millis(50))
        .build();
    for id in ["long-1", "long-2"] {
        host.spawn("long flow", id, "x").await.unwrap();
        until("the process to wait", || async {
            host.status(id).await.unwrap().status == Status::Suspended
        })
        .await;
    }
    let first_line = host.status("long-1").await.unwrap().parked_at[0].line;

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
        client.goto(&format!("{base}/process?id=long-1")).await?;
        client
            .wait()
            .for_element(Locator::Css(".sources tr.current"))
            .await?;
        // Measured at 0.5 s and 3 s after load: by then the page has polled
        // many times (200 ms), which used to put the box back at the top.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (line, _) = line_in_view(&client, "0.5 s after load").await;
        assert_eq!(line, u64::from(first_line));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (line, polls) = line_in_view(&client, "3 s after load").await;
        assert_eq!(line, u64::from(first_line));
        assert!(polls >= 3, "the page polled {polls} times");

        // A signal moves the process on to the second wait, far below.
        host.signal("long-1", "first", &1_u32).await.unwrap();
        until("the process to wait again", || async {
            let r = host.status("long-1").await.unwrap();
            r.status == Status::Suspended && r.parked_at.first().map(|l| l.line) != Some(first_line)
        })
        .await;
        let second_line = host.status("long-1").await.unwrap().parked_at[0].line;
        let wanted = second_line.to_string();
        client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(&format!(".sources tr.current[data-line='{wanted}']")))
            .await?;
        // The page patches the row's class and then scrolls in the same
        // task; one more poll makes sure the scroll has run.
        let polls_now = client.execute("return window.steadfastLive.polls", vec![]).await?;
        let target = polls_now.as_u64().unwrap() + 1;
        until("one more poll", || async {
            client
                .execute("return window.steadfastLive.polls", vec![])
                .await
                .unwrap()
                .as_u64()
                .unwrap()
                >= target
        })
        .await;
        let (line, _) = line_in_view(&client, "after the signal moved it").await;
        assert_eq!(line, u64::from(second_line));

        // Clicking a timeline entry marks its source line and scrolls to it.
        let entry = client
            .find(Locator::XPath("//ol[contains(@class,'timeline')]/li[.//span[@class='tl-name' and text()='a03']]"))
            .await?;
        let at = entry.attr("data-at").await?.expect("the entry has a line");
        let a03_line = at.rsplit(':').next().unwrap().to_owned();
        entry.find(Locator::Css(".tl-name")).await?.click().await?;
        let picked = client
            .find(Locator::Css(".source tr.picked"))
            .await?
            .attr("data-line")
            .await?;
        assert_eq!(picked.as_deref(), Some(a03_line.as_str()));
        let shown = client
            .execute(
                "const r = document.querySelector('.source tr.picked').getBoundingClientRect(); \
                 const b = document.querySelector('.source tr.picked').closest('.source').getBoundingClientRect(); \
                 return r.top >= b.top && r.bottom <= b.bottom;",
                vec![],
            )
            .await?;
        assert_eq!(shown, serde_json::json!(true), "the picked line is scrolled into the box");
        // Clicking a line marks its timeline entries.
        client
            .find(Locator::Css(&format!(".source tr[data-line='{second_line}'] td.ln")))
            .await?
            .click()
            .await?;
        let marked = client.find_all(Locator::Css("ol.timeline li.picked")).await?;
        assert_eq!(marked.len(), 1, "the second wait's entry");
        assert!(marked[0].text().await?.contains("second"));

        // The kind page counts the processes parked, not their lines.
        client.goto(&format!("{base}/kind?name=long%20flow")).await?;
        let count = client
            .wait()
            .for_element(Locator::Css("p.waiting"))
            .await?
            .attr("data-count")
            .await?;
        assert_eq!(count.as_deref(), Some("2"));
        let parked: u64 = client
            .find_all(Locator::Css(".source tr.parked"))
            .await?
            .len() as u64;
        assert_eq!(parked, 2, "long-1 and long-2 wait at different lines");
        client
            .wait()
            .for_element(Locator::Css(".source tr.busiest"))
            .await?;
        // ... and scrolls to its busiest line, far down in the box.
        let busiest = client
            .execute(
                "const row = document.querySelector('.source tr.busiest'); \
                 const box = row.closest('.source'); \
                 const r = row.getBoundingClientRect(), b = box.getBoundingClientRect(); \
                 return [r.top >= b.top - 0.5 && r.bottom <= b.bottom + 0.5, box.scrollTop];",
                vec![],
            )
            .await?;
        assert_eq!(busiest[0], serde_json::json!(true), "the busiest line is in view: {busiest}");
        assert!(busiest[1].as_f64().unwrap() > 0.0, "the box scrolled: {busiest}");

        // 420 px wide: nothing sticks out sideways.
        client.set_window_size(420, 800).await?;
        client.goto(&format!("{base}/process?id=long-2")).await?;
        client.wait().for_element(Locator::Css(".sources tr.current")).await?;
        let fits = client
            .execute("return [document.documentElement.scrollWidth, window.innerWidth]", vec![])
            .await?;
        let (page_w, win_w) = (fits[0].as_f64().unwrap(), fits[1].as_f64().unwrap());
        assert!(page_w <= win_w, "the page is {page_w} px wide in a {win_w} px window");
        line_in_view(&client, "at 420 px").await;
        client.goto(&format!("{base}/")).await?;
        client.wait().for_element(Locator::Css("tr[data-id='long-2']")).await?;
        let fits = client
            .execute("return [document.documentElement.scrollWidth, window.innerWidth]", vec![])
            .await?;
        assert!(fits[0].as_f64().unwrap() <= fits[1].as_f64().unwrap(), "list: {fits}");
        let state = client.find(Locator::Css("#live-state")).await?.text().await?;
        assert_eq!(state, "live");
        // When the dashboard goes away the page says so plainly.
        server.abort();
        client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::XPath("//span[@id='live-state' and text()='offline: retrying']"))
            .await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    server.abort();
    host.shutdown().await;
    result.expect("the browser steps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dark_mode_in_chromium() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(steadfast_dashboard::serve_on(
        listener,
        Arc::clone(&store),
        DashboardOptions::default(),
    ));
    // A browser whose system asks for dark pages.
    let browser = Browser::start(&[
        "--blink-settings=preferredColorScheme=0",
        "--force-dark-mode",
    ])
    .await;
    let client = browser.client.clone();
    let result = async {
        client.goto(&format!("{base}/")).await?;
        client
            .wait()
            .for_element(Locator::Css("table.list"))
            .await?;
        let v = client
            .execute(
                "return [matchMedia('(prefers-color-scheme: dark)').matches, \
                 getComputedStyle(document.body).backgroundColor, \
                 getComputedStyle(document.body).color]",
                vec![],
            )
            .await?;
        assert_eq!(
            v[0],
            serde_json::json!(true),
            "the browser asks for dark: {v}"
        );
        assert_eq!(
            v[1],
            serde_json::json!("rgb(17, 20, 24)"),
            "a dark background: {v}"
        );
        assert_eq!(
            v[2],
            serde_json::json!("rgb(229, 231, 235)"),
            "light text: {v}"
        );
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    server.abort();
    result.expect("the browser steps");
}
