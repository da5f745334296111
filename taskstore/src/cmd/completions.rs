//! `shell-completions`: completion scripts and man pages generated from the same clap
//! definitions the binaries parse with, so they never drift from `--help`.

use crate::bail;
use crate::cli::{commands, CompletionsArgs, Target, ENVIRONMENT, EXIT_CODES};
use crate::error::{Error, Result};
use clap_complete::Shell;
use std::io::Write;
use std::path::Path;

pub fn run(a: CompletionsArgs, out: &mut dyn Write) -> Result<u8> {
    let shell = match a.target {
        Target::Man => {
            let Some(dir) = &a.dir else {
                bail!(
                    usage,
                    "man pages need --dir DIR (one page per binary is written there)"
                );
            };
            man_pages(dir)?;
            return Ok(0);
        }
        Target::Bash => Shell::Bash,
        Target::Zsh => Shell::Zsh,
        Target::Fish => Shell::Fish,
        Target::Elvish => Shell::Elvish,
        Target::Powershell => Shell::PowerShell,
    };
    if let Some(dir) = &a.dir {
        create_dir(dir)?;
    }
    for mut cmd in commands() {
        let name = cmd.get_name().to_string();
        match &a.dir {
            Some(dir) => {
                let path =
                    clap_complete::generate_to(shell, &mut cmd, &name, dir).map_err(|e| {
                        Error::store(format!(
                            "cannot write completions into {}: {e}",
                            dir.display()
                        ))
                    })?;
                eprintln!("shell-completions: wrote {}", path.display());
            }
            None => clap_complete::generate(shell, &mut cmd, &name, out),
        }
    }
    Ok(0)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::store(format!("cannot create {}: {e}", dir.display())))
}

fn man_pages(dir: &Path) -> Result<()> {
    create_dir(dir)?;
    for cmd in commands() {
        let name = cmd.get_name().to_string();
        // The help's appendix (examples, environment, exit codes) becomes its own
        // sections, so the page carries the exit-code table and the variables.
        let cmd = cmd.after_help(None::<&str>).after_long_help(None::<&str>);
        let man = clap_mangen::Man::new(cmd.clone());
        let mut page: Vec<u8> = Vec::new();
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        roff_section(&mut page, "ENVIRONMENT", ENVIRONMENT)?;
        roff_section(&mut page, "EXIT STATUS", EXIT_CODES)?;
        man.render_version_section(&mut page)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, page)
            .map_err(|e| Error::store(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("shell-completions: wrote {}", path.display());
    }
    Ok(())
}

/// A man section from one of the help texts: its first line is a heading, the rest
/// `  NAME  meaning` lines, set as a tagged list.
fn roff_section(page: &mut Vec<u8>, title: &str, text: &str) -> std::io::Result<()> {
    writeln!(page, ".SH \"{title}\"")?;
    for line in text.lines().skip(1) {
        let line = line.trim();
        let (tag, rest) = line.split_once("  ").unwrap_or((line, ""));
        writeln!(
            page,
            ".TP\n\\fB{}\\fR\n{}",
            escape(tag),
            escape(rest.trim())
        )?;
    }
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}
