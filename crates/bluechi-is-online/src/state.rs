//! The decision logic of spec §6.7, free of IO so every rule is unit-tested: what counts as
//! online, when to keep watching, and when a controller switch excuses one offline state.

use crate::cli::{Options, Target};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The bus name got a new owner (`Some`) or lost it (`None`).
    Owner(Option<String>),
    /// `Status` as read or as announced by `PropertiesChanged`.
    Status(String),
    ControllerAddressChanged,
    WaitTimerFired,
    SwitchTimerFired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Arm the `--switch-timeout` timer (re-arming restarts it).
    StartSwitchTimer,
    Exit,
}

#[derive(Debug)]
pub struct Watch {
    target: Target,
    opts: Options,
    owner: Option<String>,
    status: String,
    waiting: bool,
    switching: bool,
}

impl Watch {
    pub fn new(target: Target, opts: Options, owner: Option<String>, status: String) -> Self {
        let waiting = opts.wait_ms > 0;
        Watch {
            target,
            opts,
            owner,
            status,
            waiting,
            switching: false,
        }
    }

    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    pub fn online(&self) -> bool {
        self.owner.is_some() && self.target.is_online_status(&self.status)
    }

    /// Whether the first check is final or events must be watched.
    pub fn needs_loop(&self) -> bool {
        let online = self.online();
        (self.opts.monitor && online) || (self.opts.wait_ms > 0 && !online)
    }

    pub fn feed(&mut self, input: Input) -> Step {
        match input {
            Input::Owner(owner) => {
                let lost = owner.is_none();
                self.owner = owner;
                if lost {
                    self.status.clear();
                    self.on_state_change()
                } else {
                    // The caller reads the new owner's Status and feeds it next.
                    Step::Continue
                }
            }
            Input::Status(s) => {
                self.status = s;
                self.on_state_change()
            }
            Input::ControllerAddressChanged if self.opts.switch_timeout_ms > 0 => {
                self.switching = true;
                Step::StartSwitchTimer
            }
            Input::ControllerAddressChanged => Step::Continue,
            Input::WaitTimerFired => {
                self.waiting = false;
                if self.online() && self.opts.monitor {
                    Step::Continue
                } else {
                    Step::Exit
                }
            }
            Input::SwitchTimerFired => {
                self.switching = false;
                if self.opts.monitor && !self.online() {
                    Step::Exit
                } else {
                    Step::Continue
                }
            }
        }
    }

    fn on_state_change(&mut self) -> Step {
        let online = self.online();
        if self.switching && !online {
            // Disconnecting from the old controller is part of the switch: excused once.
            self.switching = false;
            return Step::Continue;
        }
        if (self.opts.monitor && !online) || (!self.opts.monitor && self.waiting && online) {
            Step::Exit
        } else {
            Step::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(target: Target, wait_ms: u64, monitor: bool, switch: u64, status: &str) -> Watch {
        let opts = Options {
            wait_ms,
            monitor,
            switch_timeout_ms: switch,
        };
        Watch::new(target, opts, Some(":1.5".into()), status.into())
    }

    #[test]
    fn online_needs_an_owner_and_the_right_status() {
        assert!(watch(Target::Agent, 0, false, 0, "online").online());
        assert!(!watch(Target::Agent, 0, false, 0, "offline").online());
        assert!(!watch(Target::System, 0, false, 0, "degraded").online());
        assert!(watch(Target::System, 0, false, 0, "up").online());
        let opts = Options::default();
        assert!(!Watch::new(Target::Agent, opts, None, "online".into()).online());
    }

    #[test]
    fn when_to_watch_events() {
        assert!(!watch(Target::Agent, 0, false, 0, "online").needs_loop());
        assert!(!watch(Target::Agent, 0, false, 0, "offline").needs_loop());
        assert!(!watch(Target::Agent, 0, true, 0, "offline").needs_loop());
        assert!(watch(Target::Agent, 0, true, 0, "online").needs_loop());
        assert!(watch(Target::Agent, 100, false, 0, "offline").needs_loop());
        assert!(!watch(Target::Agent, 100, false, 0, "online").needs_loop());
    }

    #[test]
    fn waiting_ends_when_online_or_when_the_timer_fires() {
        let mut w = watch(Target::Node("n".into()), 100, false, 0, "offline");
        assert_eq!(w.feed(Input::Status("offline".into())), Step::Continue);
        assert_eq!(w.feed(Input::Status("online".into())), Step::Exit);
        assert!(w.online());

        let mut w = watch(Target::System, 100, false, 0, "down");
        assert_eq!(w.feed(Input::Status("degraded".into())), Step::Continue);
        assert_eq!(w.feed(Input::WaitTimerFired), Step::Exit);
        assert!(!w.online());
    }

    #[test]
    fn monitoring_ends_when_offline_even_after_the_wait_timer() {
        let mut w = watch(Target::Agent, 50, true, 0, "online");
        assert_eq!(w.feed(Input::WaitTimerFired), Step::Continue);
        assert_eq!(w.feed(Input::Status("online".into())), Step::Continue);
        assert_eq!(w.feed(Input::Owner(None)), Step::Exit);
        assert!(!w.online());
    }

    #[test]
    fn a_new_owner_waits_for_its_status() {
        let mut w = Watch::new(
            Target::Agent,
            Options {
                wait_ms: 100,
                ..Options::default()
            },
            None,
            String::new(),
        );
        assert_eq!(w.feed(Input::Owner(Some(":1.9".into()))), Step::Continue);
        assert_eq!(w.owner(), Some(":1.9"));
        assert_eq!(w.feed(Input::Status("online".into())), Step::Exit);
    }

    #[test]
    fn a_controller_switch_excuses_one_offline_state() {
        let mut w = watch(Target::Agent, 0, true, 1000, "online");
        assert_eq!(
            w.feed(Input::ControllerAddressChanged),
            Step::StartSwitchTimer
        );
        assert_eq!(w.feed(Input::Status("offline".into())), Step::Continue);
        assert_eq!(w.feed(Input::Status("online".into())), Step::Continue);
        assert_eq!(w.feed(Input::Status("offline".into())), Step::Exit);
    }

    #[test]
    fn a_switch_that_never_reconnects_ends_monitoring_at_its_timeout() {
        let mut w = watch(Target::Agent, 0, true, 1000, "online");
        w.feed(Input::ControllerAddressChanged);
        assert_eq!(w.feed(Input::Status("offline".into())), Step::Continue);
        assert_eq!(w.feed(Input::SwitchTimerFired), Step::Exit);
    }

    #[test]
    fn without_switch_timeout_an_address_change_is_ignored() {
        let mut w = watch(Target::Agent, 0, true, 0, "online");
        assert_eq!(w.feed(Input::ControllerAddressChanged), Step::Continue);
        assert_eq!(w.feed(Input::Status("offline".into())), Step::Exit);
    }
}
