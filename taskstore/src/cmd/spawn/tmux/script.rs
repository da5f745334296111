//! The script a `--tmux` window runs (see `script_text`), written for `sh`.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Variables the command takes from the window rather than from worker-spawn: they
/// describe the terminal it runs on.
const FROM_WINDOW: &[&str] = &["TERM", "TMUX", "TMUX_PANE"];

/// The window script's files.
pub(super) struct Files<'a> {
    pub out: &'a Path,
    pub err: &'a Path,
    pub show: &'a Path,
    pub input: Option<&'a Path>,
    pub status: &'a Path,
}

/// `'…'` for sh, whatever the bytes.
fn quote(s: &[u8]) -> Vec<u8> {
    let mut q = vec![b'\''];
    for &b in s {
        match b {
            b'\'' => q.extend_from_slice(b"'\\''"),
            _ => q.push(b),
        }
    }
    q.push(b'\'');
    q
}

/// The script the window runs:
///
/// ```text
/// trap : INT QUIT TERM
/// exec 3<SHOW; cat <&3 & exec 3<&-
/// ( trap : HUP INT QUIT TERM
///   env -i VAR=… COMMAND… >OUT 2>ERR [<IN]; s=$?; echo "$s" >STATUS; exit "$s" )
/// s=$?; wait; exit "$s"
/// ```
///
/// Traps keep the shells alive when a signal reaches the window's process group (^C,
/// a timeout), so that the status is recorded as a shell reports a signal (130, 143);
/// a trapped signal is the default again in the command. A closed window hangs up only
/// the terminal's session leader, the outer shell: it dies of it, and then the kernel
/// hangs up the whole group, so the command ends too (129). The outer shell opens the
/// screen FIFO before it starts `cat`: a `cat` that opened it only after a quick command
/// had ended, and worker-spawn had closed it, would find its output gone.
pub(super) fn script_text(argv: &[String], env: &[(&str, OsString)], f: &Files) -> Vec<u8> {
    let path = |p: &Path| quote(p.as_os_str().as_bytes());
    let mut s: Vec<u8> = b"trap : INT QUIT TERM\nexec 3<".to_vec();
    s.extend(path(f.show));
    s.extend_from_slice(b"\ncat <&3 &\nexec 3<&-\n(\ntrap : HUP INT QUIT TERM\nenv -i");
    let ours = std::env::vars_os()
        .filter(|(k, _)| !FROM_WINDOW.iter().any(|w| k == w) && !env.iter().any(|(e, _)| k == e));
    let theirs = env.iter().map(|(k, v)| (OsString::from(k), v.clone()));
    for (k, v) in ours.chain(theirs) {
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        s.push(b' ');
        s.extend(quote(&kv));
    }
    for w in FROM_WINDOW {
        s.extend(format!(" ${{{w}+\"{w}=${w}\"}}").bytes());
    }
    for a in argv {
        s.push(b' ');
        s.extend(quote(a.as_bytes()));
    }
    s.extend_from_slice(b" >");
    s.extend(path(f.out));
    s.extend_from_slice(b" 2>");
    s.extend(path(f.err));
    if let Some(input) = f.input {
        s.extend_from_slice(b" <");
        s.extend(path(input));
    }
    s.extend_from_slice(b"\ns=$?\necho \"$s\" >");
    s.extend(path(f.status));
    s.extend_from_slice(b"\nexit \"$s\"\n)\ns=$?\nwait\nexit \"$s\"\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_any_bytes() {
        assert_eq!(quote(b"it's"), b"'it'\\''s'".to_vec());
        assert_eq!(quote(b""), b"''".to_vec());
    }
}
