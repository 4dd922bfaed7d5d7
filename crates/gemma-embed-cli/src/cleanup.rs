//! Unfinished output is removed when the process is interrupted.
//!
//! Output files are written under a temporary name beside their target and renamed over it only
//! when complete; the temporary file is deleted when its owner drops it. A SIGINT (Ctrl-C),
//! SIGTERM, SIGHUP or SIGQUIT ends the process without running any destructor, so every such
//! path is also [`register`]ed here: the first registration starts a thread that waits for
//! those signals, removes the registered paths, and then ends the process the way the signal
//! would have (the shell still sees "killed by SIGINT").

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Paths to remove if a terminating signal arrives.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A path that is removed if the process is interrupted, for as long as this value lives.
#[derive(Debug)]
pub struct Registration(PathBuf);

/// Removes `path` (a file, or a directory and everything in it) if SIGINT, SIGTERM, SIGHUP or
/// SIGQUIT arrives before the returned value is dropped.
pub fn register(path: &Path) -> Registration {
    start_watcher();
    pending().push(path.to_owned());
    Registration(path.to_owned())
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut pending = pending();
        if let Some(i) = pending.iter().rposition(|p| *p == self.0) {
            pending.swap_remove(i);
        }
    }
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

#[cfg(unix)]
fn start_watcher() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        // Best effort: without the watcher an interrupted run leaves its temporary file, as
        // it would without this module.
        let Ok(mut signals) =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
        else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("gemma-embed-signals".to_owned())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    // Hold the lock to the end: nothing is registered or renamed meanwhile.
                    let pending = pending();
                    for path in pending.iter() {
                        remove(path);
                    }
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                    std::process::exit(128 + signal);
                }
            });
    });
}

#[cfg(not(unix))]
fn start_watcher() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_come_and_go() {
        let a = register(Path::new("/tmp/gemma-embed-test-a"));
        let b = register(Path::new("/tmp/gemma-embed-test-b"));
        assert!(pending().contains(&PathBuf::from("/tmp/gemma-embed-test-a")));
        drop(a);
        assert!(!pending().contains(&PathBuf::from("/tmp/gemma-embed-test-a")));
        assert!(pending().contains(&PathBuf::from("/tmp/gemma-embed-test-b")));
        drop(b);
        assert!(!pending().contains(&PathBuf::from("/tmp/gemma-embed-test-b")));
    }

    #[test]
    fn remove_takes_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("g"), b"y").unwrap();
        remove(&file);
        remove(&sub);
        remove(&dir.path().join("never-there"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
