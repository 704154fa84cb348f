//! Waiting for state: look, and look again until it holds or a deadline passes. Tests, the
//! scenario runner and the benchmarks wait on daemons they do not control, so nothing may
//! sleep a fixed time and hope; every wait goes through here and, when it gives up, says what
//! it waited for and what it saw last.
//!
//! A probe answers with a [`Step`], or anything that converts into one ([`Outcome`]): an
//! `Option` (`None`: not yet), a `bool` (`false`: not yet), a `Result` of those (an error: not
//! yet, and the error is what was seen), or a `Step` for a probe that can tell "never" (a
//! daemon it needs died).

use std::future::Future;
use std::time::{Duration, Instant};

/// Between two looks, unless [`Poll::every`] says otherwise.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// What one look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// The state holds; the wait returns this value.
    Done(T),
    /// Not yet; what was seen, for the message if the deadline passes.
    Pending(String),
    /// It never will (a process it needs exited, say): stop now.
    Fail(String),
}

/// What a probe may return.
pub trait Outcome {
    type Value;
    fn into_step(self) -> Step<Self::Value>;
}

impl<T> Outcome for Step<T> {
    type Value = T;
    fn into_step(self) -> Step<T> {
        self
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_step(self) -> Step<T> {
        self.map_or_else(|| Step::Pending(NOT_MET.to_string()), Step::Done)
    }
}

impl Outcome for bool {
    type Value = ();
    fn into_step(self) -> Step<()> {
        self.then_some(()).into_step()
    }
}

/// An error is "not yet, because of this": a connection refused while a daemon starts, say.
impl<O: Outcome, E: std::fmt::Display> Outcome for Result<O, E> {
    type Value = O::Value;
    fn into_step(self) -> Step<O::Value> {
        self.map_or_else(|e| Step::Pending(e.to_string()), O::into_step)
    }
}

const NOT_MET: &str = "condition not met";

/// Why a wait ended without the state: callers that retry differ from callers that give up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error("timed out after {:.1}s waiting for {what} (last seen: {last})", after.as_secs_f64())]
    TimedOut {
        what: String,
        after: Duration,
        last: String,
    },
    #[error("while waiting for {what}: {reason}")]
    Failed { what: String, reason: String },
}

/// One wait: what for (the message names it), how long, how often to look.
#[derive(Debug, Clone)]
pub struct Poll {
    what: String,
    timeout: Duration,
    every: Duration,
}

impl Poll {
    pub fn new(what: impl Into<String>, timeout: Duration) -> Poll {
        Poll {
            what: what.into(),
            timeout,
            every: INTERVAL,
        }
    }

    /// Looks this often instead: a probe that is itself expensive (`podman exec`) needs less.
    pub fn every(mut self, interval: Duration) -> Poll {
        self.every = interval;
        self
    }

    /// Awaits `probe` until it is done, fails, or the timeout passes (it runs at least once).
    pub async fn until<F, Fut>(
        &self,
        mut probe: F,
    ) -> Result<<Fut::Output as Outcome>::Value, PollError>
    where
        F: FnMut() -> Fut,
        Fut: Future,
        Fut::Output: Outcome,
    {
        let start = Instant::now();
        loop {
            let step = probe().await.into_step();
            match self.next(step, start) {
                Next::Stop(result) => return result,
                Next::Wait(pause) => tokio::time::sleep(pause).await,
            }
        }
    }

    /// [`Poll::until`] for a thread without a runtime.
    pub fn until_blocking<O: Outcome>(
        &self,
        mut probe: impl FnMut() -> O,
    ) -> Result<O::Value, PollError> {
        let start = Instant::now();
        loop {
            match self.next(probe().into_step(), start) {
                Next::Stop(result) => return result,
                Next::Wait(pause) => std::thread::sleep(pause),
            }
        }
    }

    /// The one decision both variants share: stop with a result, or wait this long.
    fn next<T>(&self, step: Step<T>, start: Instant) -> Next<T> {
        let last = match step {
            Step::Done(v) => return Next::Stop(Ok(v)),
            Step::Fail(reason) => {
                return Next::Stop(Err(PollError::Failed {
                    what: self.what.clone(),
                    reason,
                }))
            }
            Step::Pending(last) => last,
        };
        let left = self.timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Next::Stop(Err(PollError::TimedOut {
                what: self.what.clone(),
                after: self.timeout,
                last,
            }));
        }
        Next::Wait(left.min(self.every))
    }
}

enum Next<T> {
    Stop(Result<T, PollError>),
    Wait(Duration),
}

/// `Poll::new(what, timeout).until(probe)`.
pub async fn until<F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    probe: F,
) -> Result<<Fut::Output as Outcome>::Value, PollError>
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    Poll::new(what, timeout).until(probe).await
}

/// `Poll::new(what, timeout).until_blocking(probe)`.
pub fn until_blocking<O: Outcome>(
    what: impl Into<String>,
    timeout: Duration,
    probe: impl FnMut() -> O,
) -> Result<O::Value, PollError> {
    Poll::new(what, timeout).until_blocking(probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(60);

    #[test]
    fn returns_the_value_once_the_probe_has_it() {
        let mut looks = 0;
        let v = until_blocking("the third look", Duration::from_secs(10), || {
            looks += 1;
            (looks == 3).then_some(looks * 10)
        });
        assert_eq!(v, Ok(30));
    }

    #[test]
    fn a_timeout_names_what_it_waited_for_and_what_it_saw() {
        let e = until_blocking("the moon to turn blue", SHORT, || {
            Step::<()>::Pending("grey".into())
        })
        .unwrap_err();
        assert!(matches!(e, PollError::TimedOut { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("waiting for the moon to turn blue"), "{text}");
        assert!(text.contains("last seen: grey"), "{text}");
    }

    #[test]
    fn a_false_probe_times_out_as_not_met() {
        let e = until_blocking("never", SHORT, || false).unwrap_err();
        assert!(e.to_string().contains(NOT_MET), "{e}");
    }

    #[test]
    fn an_error_is_retried_and_reported_as_last_seen() {
        let mut looks = 0;
        let v = until_blocking("a connection", Duration::from_secs(10), || {
            looks += 1;
            if looks < 3 {
                Err("refused")
            } else {
                Ok(Some(looks))
            }
        });
        assert_eq!(v, Ok(3));
        let e = until_blocking("x", SHORT, || Err::<bool, _>("refused")).unwrap_err();
        assert!(e.to_string().contains("last seen: refused"), "{e}");
    }

    #[test]
    fn a_failure_stops_at_once() {
        let mut looks = 0;
        let e = until_blocking("x", Duration::from_secs(60), || {
            looks += 1;
            Step::<()>::Fail("the daemon exited".into())
        })
        .unwrap_err();
        assert_eq!(looks, 1);
        assert_eq!(e.to_string(), "while waiting for x: the daemon exited");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_async_variant_waits_and_reports_alike() {
        let mut looks = 0;
        let v = until("two looks", Duration::from_secs(10), || {
            looks += 1;
            let ready = looks == 2;
            async move { ready }
        })
        .await;
        assert_eq!(v, Ok(()));
        let e = Poll::new("the async moon", SHORT)
            .every(Duration::from_millis(5))
            .until(|| async { None::<u8> })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("waiting for the async moon"), "{e}");
    }
}
