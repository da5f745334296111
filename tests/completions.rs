//! shell-completions: scripts for every shell naming every binary; man pages.

mod util;

use util::{Store, BINARIES};

#[test]
fn every_shell_names_every_binary() {
    let s = Store::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = s.ok("shell-completions", [shell]);
        for b in BINARIES {
            assert!(out.contains(b), "{shell} completions do not name {b}");
        }
        // Flags come from the same definitions as the binaries.
        assert!(out.contains("fail-fast"), "{shell}: no --fail-fast");
        assert!(out.contains("max-attempts"), "{shell}: no --max-attempts");
    }
}

#[test]
fn bash_script_loads() {
    let s = Store::new();
    let r = s.bash(&format!(
        "shell-completions bash > c.bash && source c.bash && \
         for b in {}; do complete -p $b || exit 1; done",
        BINARIES.join(" ")
    ));
    let out = r.expect_code(0).stdout;
    assert!(out.contains("task-wait"), "{out}");
    assert_eq!(out.lines().count(), BINARIES.len(), "{out}");
}

#[test]
fn dir_gets_one_file_per_binary() {
    let s = Store::new();
    s.exec("shell-completions", ["fish", "--dir", "fish"])
        .expect_code(0);
    for b in BINARIES {
        let f = s.dir().join("fish").join(format!("{b}.fish"));
        assert!(
            std::fs::metadata(&f).map(|m| m.len() > 0).unwrap_or(false),
            "{}",
            f.display()
        );
    }
}

/// The README's install line, `shell-completions bash --dir
/// ~/.local/share/bash-completion/completions`: bash-completion loads a command's
/// completion lazily from a file named after the command (it tries `B`, `B.bash` and
/// `_B`), so every binary needs a file of its own under such a name, and sourcing that
/// file alone must define the command's completion.
#[test]
fn bash_dir_gives_every_binary_a_file_named_after_it() {
    let s = Store::new();
    s.exec("shell-completions", ["bash", "--dir", "completions"])
        .expect_code(0);
    let dir = s.dir().join("completions");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        BINARIES.len(),
        "one file per binary: {files:?}"
    );
    for b in BINARIES {
        let named = [b.to_string(), format!("{b}.bash"), format!("_{b}")];
        let file = named
            .iter()
            .find(|n| files.contains(n))
            .unwrap_or_else(|| panic!("no file bash-completion would load for {b}: {files:?}"));
        let r = s.bash(&format!("source completions/{file} && complete -p {b}"));
        let out = r.expect_code(0).stdout;
        assert!(out.trim_end().ends_with(&format!(" {b}")), "{out}");
    }
    // --help shows that way of installing them, not one file bash-completion never loads.
    let help = s.ok("shell-completions", ["--help"]);
    assert!(
        help.contains("shell-completions bash --dir ~/.local/share/bash-completion/completions"),
        "{help}"
    );
    assert!(!help.contains("completions/parallel-tasks"), "{help}");
}

#[test]
fn man_pages_carry_exit_codes_and_environment() {
    let s = Store::new();
    s.exec("shell-completions", ["man", "--dir", "man"])
        .expect_code(0);
    for b in BINARIES {
        let page = std::fs::read_to_string(s.dir().join("man").join(format!("{b}.1"))).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH"),
            "{b}: not a man page"
        );
        assert!(page.contains("EXIT STATUS"), "{b}: no exit codes");
        assert!(page.contains("124"), "{b}: exit-code table incomplete");
    }
    let page = std::fs::read_to_string(s.dir().join("man/task-wait.1")).unwrap();
    assert!(
        page.contains("CLAUDE_CODE_TASK_LIST_ID"),
        "no environment section"
    );
    assert!(page.contains("fail\\-fast"), "no options");
    // Where man is installed, the page renders.
    if std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_ok()
    {
        let r = s.sh("MANWIDTH=80 man -l man/task-wait.1 | cat");
        let out = r.expect_code(0).stdout;
        assert!(out.contains("EXIT STATUS"), "{out}");
    }
}

#[test]
fn bad_shell_and_man_without_dir_are_usage_errors() {
    let s = Store::new();
    let r = s.exec("shell-completions", ["tcsh"]);
    util::assert_failure(&r, "shell-completions", 2, &["tcsh"]);
    let r = s.exec("shell-completions", ["man"]);
    util::assert_failure(&r, "shell-completions", 2, &["--dir"]);
}

#[test]
fn every_help_has_examples_environment_and_exit_codes() {
    let s = Store::new();
    for b in BINARIES {
        let help = s.ok(b, ["--help"]);
        assert!(help.contains("Examples:"), "{b}");
        assert!(help.contains("Exit codes:"), "{b}");
        if *b != "shell-completions" {
            for var in ["TASK_DB", "CLAUDE_CODE_TASK_LIST_ID", "TASK_SYNC"] {
                assert!(help.contains(var), "{b} --help does not name {var}");
            }
        }
    }
}
