//! BlueChi jobs: one per lifecycle call, from the agent call to the agent's `JobDone`.
//!
//! A job is created before the agent is called (its id travels in the call), exported when
//! the agent answers, and removed when `JobDone` arrives. If `JobDone` arrives first (it
//! cannot on one ordered connection, but the bookkeeping does not depend on it), the result
//! is kept and reported right after the export.

use std::collections::BTreeMap;

use bluechi_core::names::job_path;

pub struct Job {
    pub id: u32,
    pub node: String,
    pub unit: String,
    pub job_type: &'static str,
    pub state: String,
    pub exported: bool,
    pub early_result: Option<String>,
    /// Realtime µs when the controller received the call, for `StartUnitJobMetrics`.
    pub created_us: u64,
}

impl Job {
    pub fn path(&self) -> String {
        job_path(self.id)
    }
}

pub struct Jobs {
    next_id: u32,
    jobs: BTreeMap<u32, Job>,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            next_id: 1,
            jobs: BTreeMap::new(),
        }
    }
}

impl Jobs {
    /// Allocates a job; ids start at 1 and are never reused.
    pub fn create(&mut self, node: &str, unit: &str, job_type: &'static str) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.jobs.insert(
            id,
            Job {
                id,
                node: node.to_string(),
                unit: unit.to_string(),
                job_type,
                state: "waiting".to_string(),
                exported: false,
                early_result: None,
                created_us: bluechi_core::clock::realtime_us(),
            },
        );
        id
    }

    pub fn get(&self, id: u32) -> Option<&Job> {
        self.jobs.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Job> {
        self.jobs.get_mut(&id)
    }

    pub fn remove(&mut self, id: u32) -> Option<Job> {
        self.jobs.remove(&id)
    }

    pub fn by_path(&self, path: &str) -> Option<&Job> {
        let id: u32 = path
            .strip_prefix(bluechi_core::names::JOB_PATH_PREFIX)?
            .strip_prefix('/')?
            .parse()
            .ok()?;
        self.jobs.get(&id).filter(|j| j.exported)
    }

    /// Object paths of the jobs currently on the bus.
    pub fn exported_paths(&self) -> Vec<String> {
        self.jobs
            .values()
            .filter(|j| j.exported)
            .map(|j| j.path())
            .collect()
    }

    /// Drops the jobs of a node (upstream drops them silently on disconnect).
    pub fn drop_node(&mut self, node: &str) -> Vec<Job> {
        let ids: Vec<u32> = self
            .jobs
            .values()
            .filter(|j| j.node == node)
            .map(|j| j.id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.jobs.remove(&id))
            .collect()
    }

    /// Removes every exported job, for `JobRemoved(..., "cancelled due to shutdown")`.
    pub fn drain_all(&mut self) -> Vec<(u32, String, String, String)> {
        let all = std::mem::take(&mut self.jobs);
        all.into_values()
            .filter(|j| j.exported)
            .map(|j| (j.id, j.path(), j.node, j.unit))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_one_and_are_not_reused() {
        let mut j = Jobs::default();
        assert_eq!(j.create("n", "u", "start"), 1);
        j.remove(1);
        assert_eq!(j.create("n", "u", "stop"), 2);
        assert!(
            j.by_path("/org/eclipse/bluechi/job/2").is_none(),
            "not exported yet"
        );
        j.get_mut(2).unwrap().exported = true;
        assert_eq!(
            j.by_path("/org/eclipse/bluechi/job/2").unwrap().job_type,
            "stop"
        );
        assert!(j.by_path("/org/eclipse/bluechi/job/x").is_none());
    }

    #[test]
    fn drop_node_only_touches_that_node() {
        let mut j = Jobs::default();
        j.create("a", "u", "start");
        j.create("b", "u", "start");
        assert_eq!(j.drop_node("a").len(), 1);
        assert!(j.get(2).is_some());
    }
}
