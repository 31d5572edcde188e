//! Finding store processes: the members of the workers' process groups that are
//! not the workers themselves, read from `/proc/<pid>/stat`.

use std::time::{Duration, Instant};

/// `(state, process group)` of `pid`, or `None` if it is gone.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Live (not zombie) processes in any of `groups`, except the group leaders.
pub(super) fn members(groups: &[i32]) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if groups.contains(&pid) {
            continue;
        }
        if let Some((state, pgrp)) = stat(pid)
            && groups.contains(&pgrp)
            && !matches!(state, 'Z' | 'X')
        {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// Wait until every one of `pids` has died (is gone or a zombie), at most `limit`.
pub(super) fn wait_gone(pids: &[i32], limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline
        && pids
            .iter()
            .any(|&p| stat(p).is_some_and(|(s, _)| !matches!(s, 'Z' | 'X')))
    {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn members_finds_a_groups_children_but_not_its_leader() {
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let g = i32::try_from(leader.id()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = members(&[g]);
        while found.len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            found = members(&[g]);
        }
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(g),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = leader.wait();
        assert_eq!(found.len(), 2, "two sleeps, not the shell: {found:?}");
        assert!(!found.contains(&g));
        wait_gone(&found, Duration::from_secs(5));
        assert!(members(&[g]).is_empty());
    }
}
