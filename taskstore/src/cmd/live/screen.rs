//! `task-list --watch` on a terminal: a full-screen view of a run, redrawn when the
//! list changes (and once a second, for the clocks), until `q`, Esc or Ctrl-C.
//!
//! The terminal is driven through crossterm: raw mode (keys arrive one by one, Ctrl-C
//! as a key), the alternate screen (the shell's screen comes back as it was), the
//! window size, cursor moves and colours. A guard puts the terminal back however the
//! view ends.

use super::{Follower, Snapshot};
use crate::error::{Error, Result};
use crate::model::{Status, Task};
use crate::signals::{self, Signals};
use crate::time::now_ms;
use crossterm::style::{Attribute, Color, Print, ResetColor, SetAttribute, SetForegroundColor};
use crossterm::terminal::{self, Clear, ClearType};
use crossterm::{cursor, queue};
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tasks shown in the ready and failure sections at most (the rest is counted).
const SECTION: usize = 5;

pub fn run(f: &mut Follower, signals: &Signals, out: &mut dyn Write) -> Result<u8> {
    let input = Input::new()?;
    let _guard = Guard::enter()?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let started = Instant::now();
    let mut snap = f.read()?;
    loop {
        let (cols, rows) = terminal::size().unwrap_or((80, 24));
        let view = View {
            list: f.list().as_str(),
            snap: &snap,
            now: now_ms(),
            watching: started.elapsed(),
        };
        draw(out, &view.lines(cols as usize, rows as usize), cols, color)?;
        if f.until_done() && snap.settled() {
            return Ok(0);
        }
        let tick = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(sig) = signals.received() {
                return Ok(signals::exit_code(sig));
            }
            match input.key() {
                Some(Key::Quit) => return Ok(0),
                Some(Key::Interrupt) => return Ok(signals::exit_code(signals::SIGINT)),
                Some(Key::Redraw) => break,
                None => {}
            }
            if f.changed(Duration::from_millis(100))? {
                snap = f.read()?;
                break;
            }
            if Instant::now() >= tick {
                break;
            }
        }
    }
}

enum Key {
    Quit,
    Interrupt,
    Redraw,
}

/// Keys pressed and window size changes since the last look, without waiting.
///
/// Read from stdin directly rather than through crossterm's event reader: that one
/// waits on stdin and its resize signal with an edge-triggered epoll and, given both at
/// once, reported the resize and left the key unread until the next key came.
///
/// Keys come from the terminal itself (`/dev/tty`), which is also what raw mode is set
/// on: stdin may be a pipe (`echo 3 | task-list - --watch`).
struct Input {
    resized: Arc<AtomicBool>,
    tty: std::fs::File,
}

impl Input {
    fn new() -> Result<Input> {
        let resized = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGWINCH, Arc::clone(&resized))
            .map_err(|e| Error::store(format!("cannot install a signal handler: {e}")))?;
        let tty = std::fs::File::open("/dev/tty")
            .map_err(|e| Error::usage(format!("cannot read the terminal (/dev/tty): {e}")))?;
        Ok(Input { resized, tty })
    }

    fn key(&self) -> Option<Key> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if self.resized.swap(false, Ordering::Relaxed) {
            return Some(Key::Redraw);
        }
        let mut fds = [PollFd::new(self.tty.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            return None;
        }
        let mut buf = [0u8; 64];
        let n = nix::unistd::read(self.tty.as_fd(), &mut buf).unwrap_or(0);
        let keys = &buf[..n];
        if keys.contains(&3) {
            return Some(Key::Interrupt); // Ctrl-C, as a byte in raw mode
        }
        // `q`, or Esc alone (an arrow key is Esc followed by more in the same read).
        if keys.iter().any(|&b| b == b'q' || b == b'Q') || keys == [0x1b] {
            return Some(Key::Quit);
        }
        None
    }
}

/// Raw mode and the alternate screen while the view runs; the terminal as it was after.
struct Guard;

impl Guard {
    fn enter() -> Result<Guard> {
        let term = |e: std::io::Error| Error::usage(format!("cannot set up the terminal: {e}"));
        terminal::enable_raw_mode().map_err(term)?;
        let guard = Guard;
        // A panic aborts (release builds) without running the guard: restore first.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            Guard::restore();
            hook(info)
        }));
        let mut o = std::io::stdout();
        queue!(o, terminal::EnterAlternateScreen, cursor::Hide).map_err(term)?;
        o.flush()?;
        Ok(guard)
    }
}

impl Guard {
    fn restore() {
        let mut o = std::io::stdout();
        let _ = queue!(o, ResetColor, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = o.flush();
        let _ = terminal::disable_raw_mode();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        Guard::restore();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Bold,
    Dim,
    Color(Color),
}

/// A line of the screen: pieces of text, each in a style.
#[derive(Default)]
struct Line(Vec<(String, Style)>);

impl Line {
    fn plain(s: impl Into<String>) -> Line {
        Line(vec![(s.into(), Style::Plain)])
    }
    fn add(mut self, s: impl Into<String>, style: Style) -> Line {
        self.0.push((s.into(), style));
        self
    }
}

fn draw(mut out: &mut dyn Write, lines: &[Line], cols: u16, color: bool) -> Result<()> {
    for (row, line) in lines.iter().enumerate() {
        queue!(&mut out, cursor::MoveTo(0, row as u16))?;
        let mut left = cols as usize;
        for (text, style) in &line.0 {
            let text: String = text.chars().take(left).collect();
            left -= text.chars().count();
            if color && *style != Style::Plain {
                match style {
                    Style::Bold => queue!(&mut out, SetAttribute(Attribute::Bold))?,
                    Style::Dim => queue!(&mut out, SetAttribute(Attribute::Dim))?,
                    Style::Color(c) => queue!(&mut out, SetForegroundColor(*c))?,
                    Style::Plain => {}
                }
                queue!(
                    &mut out,
                    Print(text),
                    SetAttribute(Attribute::Reset),
                    ResetColor
                )?;
            } else {
                queue!(&mut out, Print(text))?;
            }
        }
        queue!(&mut out, Clear(ClearType::UntilNewLine))?;
    }
    queue!(
        &mut out,
        cursor::MoveTo(0, lines.len() as u16),
        Clear(ClearType::FromCursorDown)
    )?;
    out.flush()?;
    Ok(())
}

fn status_style(s: Status) -> Style {
    Style::Color(match s {
        Status::Pending => Color::Grey,
        Status::InProgress => Color::Yellow,
        Status::Completed => Color::Green,
        Status::Failed => Color::Red,
        Status::Cancelled => Color::DarkGrey,
    })
}

/// What the screen shows, from one snapshot of the list.
struct View<'a> {
    list: &'a str,
    snap: &'a Snapshot,
    now: i64,
    watching: Duration,
}

impl View<'_> {
    fn count(&self, f: impl Fn(&Task) -> bool) -> usize {
        self.snap.tasks.iter().filter(|t| f(t)).count()
    }

    /// Every line, fitted to `rows`: the header always, then the sections, each cut
    /// short with a count of what did not fit.
    fn lines(&self, cols: usize, rows: usize) -> Vec<Line> {
        let tasks = &self.snap.tasks;
        let total = tasks.len();
        let closed = self.count(|t| t.status.is_terminal());
        let running: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.status == Status::InProgress)
            .collect();
        let mut ready: Vec<&Task> = tasks.iter().filter(|t| t.is_ready()).collect();
        ready.sort_by_key(|t| t.claim_rank());
        let mut failed: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.status == Status::Failed)
            .collect();
        failed.sort_by_key(|t| std::cmp::Reverse((t.finished_at, t.id)));
        let stalled = self.snap.stalled.len();
        let blocked = self
            .count(|t| t.status == Status::Pending && !t.is_ready())
            .saturating_sub(stalled);

        let mut out = vec![Line::default()
            .add(format!("task-list --watch: {}", self.list), Style::Bold)
            .add(
                format!(
                    "  {total} task{}, watching {}   (q quits)",
                    if total == 1 { "" } else { "s" },
                    clock(self.watching.as_millis() as i64)
                ),
                Style::Dim,
            )];
        let mut counts = Line::default();
        for (n, label, style) in [
            (
                self.count(|t| t.status == Status::Completed),
                "completed",
                status_style(Status::Completed),
            ),
            (
                running.len(),
                "in progress",
                status_style(Status::InProgress),
            ),
            (ready.len(), "ready", Style::Plain),
            (blocked, "blocked", Style::Plain),
            (failed.len(), "failed", status_style(Status::Failed)),
            (stalled, "stalled", status_style(Status::Failed)),
            (
                self.count(|t| t.status == Status::Cancelled),
                "cancelled",
                status_style(Status::Cancelled),
            ),
        ] {
            if counts.0.is_empty() || n > 0 {
                let sep = if counts.0.is_empty() { "" } else { " · " };
                counts = counts
                    .add(sep, Style::Plain)
                    .add(format!("{n} {label}"), style);
            }
        }
        out.push(counts);
        out.push(self.progress(cols, closed, total));

        let room = rows.saturating_sub(out.len() + 6);
        let failures = failed.len().min(SECTION);
        let readies = ready.len().min(SECTION);
        let runs = room.saturating_sub(failures.min(2) + readies.min(2)).max(1);
        self.section(&mut out, "In progress", &running, runs, |t| {
            let elapsed = t
                .started_at
                .map(|s| clock(self.now - s))
                .unwrap_or_default();
            let owner = t.owner.as_deref().unwrap_or("-");
            let holder = t
                .holder
                .as_ref()
                .map(|h| format!(" {}:{}", h.host, h.pid))
                .unwrap_or_default();
            vec![
                (format!("  {elapsed:>7}  "), Style::Color(Color::Yellow)),
                (format!("{owner}{holder}  "), Style::Dim),
            ]
        });
        let left = rows.saturating_sub(out.len() + 3);
        self.section(&mut out, "Ready", &ready, readies.min(left), |t| {
            let mut why = Vec::new();
            if t.priority != 0 {
                why.push(format!("priority {}", t.priority));
            }
            if t.depth != 0 {
                why.push(format!("{} waiting", t.depth));
            }
            vec![(format!("  {:<20}", why.join(", ")), Style::Dim)]
        });
        let left = rows.saturating_sub(out.len() + 1);
        self.section(
            &mut out,
            "Recent failures",
            &failed,
            failures.min(left),
            |t| {
                let code = t
                    .exit_code
                    .map(|c| format!("exit {c}"))
                    .unwrap_or_else(|| "no exit code".into());
                let ago = t
                    .finished_at
                    .map(|f| format!(", {} ago", clock(self.now - f)))
                    .unwrap_or_default();
                vec![(format!("  {code:<8}{ago}  "), Style::Color(Color::Red))]
            },
        );
        out.truncate(rows);
        out
    }

    /// `[#####.....] 40%  6/15 closed  ETA 1m12s`: the rate so far is closed tasks
    /// over the time since the first of them started.
    fn progress(&self, cols: usize, closed: usize, total: usize) -> Line {
        let share = if total == 0 {
            1.0
        } else {
            closed as f64 / total as f64
        };
        let width = cols.saturating_sub(40).clamp(10, 50);
        let full = (share * width as f64).round() as usize;
        let first = self.snap.tasks.iter().filter_map(|t| t.started_at).min();
        let eta = match first {
            Some(first) if closed > 0 && closed < total => {
                let per_task = (self.now - first) as f64 / closed as f64;
                format!("ETA {}", clock((per_task * (total - closed) as f64) as i64))
            }
            _ if closed == total => "done".into(),
            _ => "ETA -".into(),
        };
        let cost = crate::output::tasks_cost(&self.snap.tasks)
            .map(|c| format!("  {}", crate::output::dollars(c)))
            .unwrap_or_default();
        Line::default()
            .add("[", Style::Plain)
            .add("#".repeat(full), status_style(Status::Completed))
            .add(".".repeat(width - full), Style::Dim)
            .add(
                format!(
                    "] {:>3}%  {closed}/{total} closed  {eta}{cost}",
                    (share * 100.0).floor()
                ),
                Style::Plain,
            )
    }

    /// A heading with a count, then up to `max` tasks: id, what `detail` says, subject.
    fn section(
        &self,
        out: &mut Vec<Line>,
        title: &str,
        tasks: &[&Task],
        max: usize,
        detail: impl Fn(&Task) -> Vec<(String, Style)>,
    ) {
        if tasks.is_empty() {
            return;
        }
        out.push(Line::plain(""));
        out.push(Line::default().add(format!("{title} ({})", tasks.len()), Style::Bold));
        let shown = if tasks.len() > max {
            max.saturating_sub(1)
        } else {
            max
        };
        for t in &tasks[..shown.min(tasks.len())] {
            let mut line = Line::default().add(format!("  #{:<5}", t.id.0), Style::Plain);
            line.0.extend(detail(t));
            out.push(line.add(crate::output::one_line(&t.subject), Style::Plain));
        }
        if tasks.len() > shown {
            out.push(
                Line::default().add(format!("  … and {} more", tasks.len() - shown), Style::Dim),
            );
        }
    }
}

/// `0:07`, `12:03`, `1:02:03`: a clock for elapsed times.
fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clocks() {
        assert_eq!(super::clock(7_900), "0:07");
        assert_eq!(super::clock(723_000), "12:03");
        assert_eq!(super::clock(3_723_000), "1:02:03");
    }
}
