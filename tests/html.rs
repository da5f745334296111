//! `--format html`: the page of a real run (three workers, a retry, a failure), opened
//! from disk in a real headless Chromium: no console error, no network request, one bar
//! per attempt with the attributes scripts read, a screenshot that is not blank. On both
//! backends.

mod util;

use std::collections::BTreeSet;
use std::path::Path;
use util::browser::{chromium_or_skip, load, screenshot};
use util::Store;

/// The `<a class="bar …">` elements of a DOM, each as its attributes.
fn bars(dom: &str) -> Vec<std::collections::HashMap<String, String>> {
    dom.match_indices("<a class=\"bar")
        .map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>').expect("a tag")];
            let mut attrs = std::collections::HashMap::new();
            for part in tag.split("\" ") {
                if let Some((k, v)) = part.split_once("=\"") {
                    let k = k.rsplit(' ').next().unwrap();
                    attrs.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
            }
            attrs
        })
        .collect()
}

/// A run to look at: six steps (3 and 4 wait for 1), a flaky task that succeeds on its
/// second attempt, and a broken one, on three workers.
fn run(s: &Store) {
    for i in 1..=6 {
        s.create(&format!("Step {i}"), &[]);
    }
    s.ok("task-update", ["3", "4", "--add-blocked-by", "1"]);
    s.create("Flaky <b>&</b>", &["--max-attempts", "2"]);
    s.create("Broken", &["--blocked-by", "2"]);
    let r = s.exec(
        "worker-spawn",
        [
            "-j",
            "3",
            "--owner-prefix",
            "w",
            "--no-progress",
            "--",
            "sh",
            "-c",
            "sleep 0.$TASK_ID; case $TASK_ID in 7) [ $TASK_ATTEMPT = 2 ] || { echo flake >&2; exit 1; };; \
             8) echo boom >&2; exit 3;; esac; echo done $TASK_ID",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn the_page_of_a_run_in_a_real_browser() {
    let s = Store::new();
    run(&s);
    let page = s.dir().join("run.html");
    let html = s.ok("task-list", ["--format", "html"]);
    std::fs::write(&page, &html).unwrap();
    // Self-contained: nothing fetched from anywhere.
    for needle in ["http://", "https://", " src=", "@import", "url("] {
        assert!(
            !html.contains(needle),
            "the page refers to something outside it: {needle}"
        );
    }
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let loaded = load(&chromium, s.dir(), &page);
    assert!(
        loaded.console.is_empty(),
        "console messages: {:#?}",
        loaded.console
    );
    assert!(
        loaded.page_requests().is_empty(),
        "requests: {:#?}",
        loaded.page_requests()
    );
    assert!(
        loaded.dom.contains("data-ready=\""),
        "the page's script did not run to its end"
    );

    // One bar per attempt: 8 tasks, one of them twice.
    let bars = bars(&loaded.dom);
    assert_eq!(bars.len(), 9, "{bars:#?}");
    let get = |task: &str, attempt: &str| {
        bars.iter()
            .find(|b| b["data-task"] == task && b["data-attempt"] == attempt)
            .unwrap_or_else(|| panic!("no bar for #{task} attempt {attempt}: {bars:#?}"))
    };
    assert_eq!(get("7", "1")["data-outcome"], "retried");
    assert_eq!(get("7", "1")["data-exit"], "1");
    assert_eq!(get("7", "2")["data-outcome"], "completed");
    assert_eq!(get("8", "1")["data-outcome"], "failed");
    assert_eq!(get("8", "1")["data-exit"], "3");
    for b in &bars {
        assert!(b["data-worker"].starts_with("w-"), "{b:?}");
        assert_eq!(b["href"], format!("#t{}", b["data-task"]));
    }
    let workers: BTreeSet<&str> = bars.iter().map(|b| b["data-worker"].as_str()).collect();
    assert!(workers.len() <= 3 && !workers.is_empty(), "{workers:?}");
    // The heading and the table, as a person reads them.
    assert!(loaded.dom.contains("<b>8</b> tasks"), "heading");
    assert!(loaded.dom.contains("✗ failed") && loaded.dom.contains("✓ completed"));
    assert!(
        loaded.dom.contains("Flaky &lt;b&gt;&amp;&lt;/b&gt;"),
        "subjects are escaped"
    );
    let failed_row = loaded.dom.find("id=\"t8\"").expect("task 8's row");
    let first_row = loaded.dom.find("class=\"row s-").expect("rows");
    assert!(
        loaded.dom[first_row..].starts_with("class=\"row s-bad\" id=\"t8\""),
        "failures first"
    );
    assert!(
        loaded.dom[failed_row..].contains("boom"),
        "the failure's log is in its row"
    );
    assert!(loaded.dom.contains("<h3>wave 2</h3>"), "the waves");

    // A screenshot that shows something: a blank page decodes to a handful of byte
    // values, a drawn one to many.
    let png = s.dir().join("run.png");
    screenshot(&chromium, s.dir(), &page, &png, 1280, 860);
    let distinct = util::python(
        "import sys,zlib\nd=open(sys.argv[1],'rb').read()\nassert d[:8]==b'\\x89PNG\\r\\n\\x1a\\n'\n\
         i=8;idat=b''\nwhile i<len(d):\n n=int.from_bytes(d[i:i+4],'big');t=d[i+4:i+8]\n \
         if t==b'IDAT': idat+=d[i+8:i+8+n]\n i+=12+n\nprint(len(set(zlib.decompress(idat))))",
        &[png.to_str().unwrap()],
    );
    let distinct: usize = distinct.trim().parse().unwrap();
    assert!(
        distinct > 100,
        "the screenshot looks blank ({distinct} distinct byte values)"
    );
    if let Some(keep) = std::env::var_os("TASK_TEST_SCREENSHOT") {
        std::fs::copy(&png, Path::new(&keep)).expect("keep the screenshot");
    }
}

#[test]
fn an_empty_list_gives_a_page_that_says_so() {
    let s = Store::new();
    s.create("one", &[]);
    let html = s.ok("task-list", ["--format", "html", "-s", "failed"]);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("No tasks"), "{html}");
    assert!(!html.contains("class=\"bar"));
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let page = s.file("empty.html", &html);
    let loaded = load(&chromium, s.dir(), &page);
    assert!(loaded.console.is_empty(), "{:#?}", loaded.console);
    assert!(loaded.dom.contains("No tasks"));
}

#[test]
fn html_draws_tasks_not_counts() {
    let s = Store::new();
    s.create("one", &[]);
    for flag in ["--count", "--waves", "--lists"] {
        let r = s.exec("task-list", [flag, "--format", "html"]);
        util::assert_failure(&r, "task-list", 2, &["html"]);
    }
}

#[test]
fn task_wait_writes_the_page_at_the_end_of_the_wait() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    let r = s.exec("worker-spawn", ["-j", "2", "--no-progress", "--", "true"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.exec("task-wait", ["--format", "html"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        r.stdout.matches(" data-attempt=").count(),
        2,
        "one bar per attempt"
    );
    assert!(r.stdout.contains("<b>2</b> ✓ completed"), "{}", r.stdout);
    // A wait that times out writes the page as things stand.
    s.create("never", &[]);
    let r = s.exec("task-wait", ["3", "--timeout", "0.1", "--format", "html"]);
    assert_eq!(r.code, 124, "{r:?}");
    assert!(r.stdout.contains("○ pending"), "{}", r.stdout);
}
