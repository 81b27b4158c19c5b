//! The host lifecycle as a pure state machine: what one recorded crawl outcome does to a
//! host's status, its failure count, and the status of its servers.
//!
//! ```text
//!            ok/partial (no redirect)            failures >= stale_after
//!   moved <-------------------------- active  ------------------------->  stale
//!     ^     ok/partial with a redirect   ^  <-------- ok/partial -------   |
//!     |                                  |                                 | and no success
//!     +---- failures below stale_after --+  <-------- ok/partial -------  gone  for gone_after
//! ```
//! - A crawl that kept data (`ok`, `partial`) resets the failures; the host is `moved` when
//!   its well-known URL redirected permanently, `active` otherwise.
//! - A failure counts one more; from `stale_after_failures` on the host is `stale` (still
//!   searchable, flagged), and `gone` (out of search, history kept) once it has also had no
//!   success for `gone_after_ms`. Below the threshold a `moved` host stays `moved`.
//! - The host's servers follow it to `stale` and `gone`, and back to `active` after a
//!   success, except that a success of a `moved` host leaves them as they are.
//!
//! Back-off (when the host is next due) and giving up on a poison host (recorded as a
//! `timeout` failure after repeated lease expiries) are decided by the crawler
//! (`crawl/mod.rs`); they reach this machine as the failure outcome they record.
//! The store ([`crate::store::Store::record_outcome`]) only persists the [`Transition`].

use crate::model::{HostStatus, Outcome, ServerStatus};

/// When failures make a host stale and gone (`crawl.stale_after_failures`,
/// `crawl.gone_after_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub stale_after_failures: i64,
    pub gone_after_ms: i64,
}

/// A host's crawl state before an outcome is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    pub status: HostStatus,
    pub consecutive_failures: i64,
    pub last_success_ms: Option<i64>,
    pub created_ms: i64,
    pub moved_to: Option<String>,
}

/// One crawl's result, as far as the lifecycle cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt<'a> {
    pub outcome: Outcome,
    /// Where the well-known URL redirected permanently to, if it did.
    pub moved_to: Option<&'a str>,
    /// When the crawl finished (epoch milliseconds).
    pub at_ms: i64,
}

/// What recording an outcome changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub status: HostStatus,
    pub consecutive_failures: i64,
    /// The crawl counts as a success: `last_success_ms` and `moved_to` are updated.
    pub succeeded: bool,
    /// The status the host's servers move to, when they move.
    pub servers: Option<ServerStatus>,
    /// The host moved to a new place (logged as a `host` change).
    pub moved: bool,
}

impl Lifecycle {
    pub fn transition(&self, prev: &HostState, a: Attempt<'_>) -> Transition {
        let succeeded = a.outcome.keeps_data();
        let (consecutive_failures, status) = if succeeded {
            let status = match a.moved_to {
                Some(_) => HostStatus::Moved,
                None => HostStatus::Active,
            };
            (0, status)
        } else {
            let failures = prev.consecutive_failures + 1;
            let since = a.at_ms - prev.last_success_ms.unwrap_or(prev.created_ms);
            let status = if failures < self.stale_after_failures {
                match prev.status {
                    HostStatus::Moved => HostStatus::Moved,
                    _ => HostStatus::Active,
                }
            } else if since >= self.gone_after_ms {
                HostStatus::Gone
            } else {
                HostStatus::Stale
            };
            (failures, status)
        };
        let servers = if status == prev.status {
            None
        } else {
            match status {
                HostStatus::Stale => Some(ServerStatus::Stale),
                HostStatus::Gone => Some(ServerStatus::Gone),
                _ if succeeded && prev.status != HostStatus::Moved => Some(ServerStatus::Active),
                _ => None,
            }
        };
        let moved = succeeded && a.moved_to.is_some() && a.moved_to != prev.moved_to.as_deref();
        Transition {
            status,
            consecutive_failures,
            succeeded,
            servers,
            moved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FailureClass;

    const POLICY: Lifecycle = Lifecycle {
        stale_after_failures: 3,
        gone_after_ms: 1_000,
    };

    fn host(status: HostStatus, failures: i64, last_success_ms: Option<i64>) -> HostState {
        HostState {
            status,
            consecutive_failures: failures,
            last_success_ms,
            created_ms: 0,
            moved_to: None,
        }
    }

    fn at(outcome: Outcome, moved_to: Option<&str>, at_ms: i64) -> Attempt<'_> {
        Attempt {
            outcome,
            moved_to,
            at_ms,
        }
    }

    /// Every status x every outcome x (below / at the stale threshold) x (recent / old
    /// success) x (with / without a redirect), against the rules in the module docs
    /// written out independently.
    #[test]
    fn every_state_and_outcome() {
        let mut checked = 0;
        for &status in HostStatus::ALL {
            for outcome in Outcome::all() {
                for failures in [0, 1, 2, 5] {
                    for last_success in [None, Some(100), Some(9_000)] {
                        for moved_to in [None, Some("https://new.example/")] {
                            let prev = host(status, failures, last_success);
                            let t = POLICY.transition(&prev, at(outcome, moved_to, 10_000));
                            check(&prev, outcome, moved_to, t);
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 5 * 15 * 4 * 3 * 2);
    }

    fn check(prev: &HostState, outcome: Outcome, moved_to: Option<&str>, t: Transition) {
        let ctx = format!("{prev:?} {outcome} {moved_to:?} -> {t:?}");
        let ok = matches!(outcome, Outcome::Ok | Outcome::Partial);
        assert_eq!(t.succeeded, ok, "{ctx}");
        if ok {
            assert_eq!(t.consecutive_failures, 0, "{ctx}");
            let want = if moved_to.is_some() {
                HostStatus::Moved
            } else {
                HostStatus::Active
            };
            assert_eq!(t.status, want, "{ctx}");
            assert_eq!(t.moved, moved_to.is_some(), "{ctx}");
        } else {
            let f = prev.consecutive_failures + 1;
            assert_eq!(t.consecutive_failures, f, "{ctx}");
            let quiet_for = 10_000 - prev.last_success_ms.unwrap_or(0);
            let want = match (f >= 3, quiet_for >= 1_000) {
                (true, true) => HostStatus::Gone,
                (true, false) => HostStatus::Stale,
                (false, _) if prev.status == HostStatus::Moved => HostStatus::Moved,
                (false, _) => HostStatus::Active,
            };
            assert_eq!(t.status, want, "{ctx}");
            assert!(!t.moved, "{ctx}");
        }
        let want_servers = match t.status {
            s if s == prev.status => None,
            HostStatus::Stale => Some(ServerStatus::Stale),
            HostStatus::Gone => Some(ServerStatus::Gone),
            _ if ok && prev.status != HostStatus::Moved => Some(ServerStatus::Active),
            _ => None,
        };
        assert_eq!(t.servers, want_servers, "{ctx}");
    }

    #[test]
    fn the_story_of_one_host() {
        let timeout = Outcome::Failed(FailureClass::Timeout);
        let mut h = host(HostStatus::Active, 0, Some(0));
        let mut step = |outcome, at_ms| {
            let t = POLICY.transition(&h, at(outcome, None, at_ms));
            h.status = t.status;
            h.consecutive_failures = t.consecutive_failures;
            if t.succeeded {
                h.last_success_ms = Some(at_ms);
            }
            (t.status, t.servers)
        };
        assert_eq!(step(timeout, 100), (HostStatus::Active, None));
        assert_eq!(step(timeout, 200), (HostStatus::Active, None));
        assert_eq!(
            step(timeout, 300),
            (HostStatus::Stale, Some(ServerStatus::Stale))
        );
        assert_eq!(
            step(timeout, 1_500),
            (HostStatus::Gone, Some(ServerStatus::Gone))
        );
        assert_eq!(step(timeout, 1_600), (HostStatus::Gone, None));
        assert_eq!(
            step(Outcome::Partial, 1_700),
            (HostStatus::Active, Some(ServerStatus::Active))
        );
    }

    #[test]
    fn a_known_redirect_is_not_a_new_move() {
        let mut prev = host(HostStatus::Moved, 0, Some(0));
        prev.moved_to = Some("https://new.example/".into());
        let t = POLICY.transition(&prev, at(Outcome::Ok, Some("https://new.example/"), 10));
        assert_eq!(
            (t.status, t.moved, t.servers),
            (HostStatus::Moved, false, None)
        );
        let t = POLICY.transition(&prev, at(Outcome::Ok, Some("https://other.example/"), 10));
        assert!(t.moved);
    }
}
