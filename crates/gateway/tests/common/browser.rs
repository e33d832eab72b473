//! A real headless Chromium driven through chromedriver (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs): the binaries from `CHROMIUM` / `CHROMEDRIVER`,
//! else the Debian paths. A missing binary fails the test with the command that installs it —
//! never a skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use thirtyfour::ChromiumLikeCapabilities;
use thirtyfour::prelude::*;

pub struct Browser {
    pub driver: WebDriver,
    chromedriver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

fn binary(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: the browser tests need Debian's chromium and chromium-driver \
         (apt-get install -y --no-install-recommends chromium chromium-driver), or {var} set"
    );
    path
}

impl Browser {
    /// Chromium at 1280×900 (`phone` narrows it to 390×844), screenshots under
    /// `target/tmp/screenshots/{name}`.
    pub async fn start(name: &str, phone: bool) -> Browser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let chromium = binary("CHROMIUM", "/usr/lib/chromium/chromium");
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&chromium).unwrap();
        let size = if phone { "390,844" } else { "1280,900" };
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--lang=ru-RU",
            &format!("--window-size={size}"),
            &format!("--user-data-dir={}", profile.path().display()),
        ] {
            caps.add_arg(arg).unwrap();
        }
        // What the browser asks pages for: Russian, as a salon's staff have it.
        caps.add_experimental_option(
            "prefs",
            serde_json::json!({"intl.accept_languages": "ru-RU,ru"}),
        )
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match WebDriver::new(&url, caps.clone()).await {
                Ok(driver) => {
                    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
                        .join("screenshots")
                        .join(name);
                    std::fs::create_dir_all(&shots).unwrap();
                    return Browser {
                        driver,
                        chromedriver: child,
                        _profile: profile,
                        shots,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {url}: {last:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.driver.goto(url).await.unwrap();
    }

    /// The element, waiting up to 5 s for it (htmx swaps, page loads).
    pub async fn find(&self, css: &str) -> WebElement {
        self.driver
            .query(By::Css(css))
            .wait(Duration::from_secs(5), Duration::from_millis(50))
            .first()
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self.driver.find_all(By::Css(css)).await.unwrap().is_empty()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Waits up to 10 s until the element's text contains `text` (htmx polls every 2 s).
    pub async fn wait_text(&self, css: &str, text: &str) {
        for _ in 0..200 {
            if let Ok(e) = self.driver.find(By::Css(css)).await
                && e.text().await.unwrap_or_default().contains(text)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let source = self.driver.source().await.unwrap_or_default();
        panic!("{css} never showed {text:?}; the page: {source}");
    }

    /// Waits until nothing matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        for _ in 0..100 {
            if !self.exists(css).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} is still there");
    }

    /// A screenshot kept as a test artifact.
    pub async fn shot(&self, name: &str) {
        let path = self.shots.join(format!("{name}.png"));
        self.driver.screenshot(&path).await.unwrap();
    }

    pub async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.driver.delete_all_cookies().await.unwrap();
        self.goto(&format!("{base}/login")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
        self.find("header.top").await;
    }

    pub async fn quit(mut self) {
        let _ = self.driver.clone().quit().await;
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.chromedriver.kill();
    }
}
