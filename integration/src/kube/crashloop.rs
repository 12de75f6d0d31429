//! The crash-loop fault: an overlay on what the fake serves, computed at request time so that
//! restart counts grow while it lasts.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStateWaiting, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::model::{Model, running};

/// The namespace whose workloads never crash-loop: the add-ons and the control plane's own.
const SYSTEM_NAMESPACE: &str = "kube-system";

/// How often a crash-looping container restarts (real kubelets back off from 10 s to 5 min;
/// the fake is quicker so that restart growth shows within a test).
const CRASHLOOP_RESTART_INTERVAL: Duration = Duration::from_secs(1);

/// The waiting reason of a crash-looping container.
const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// Whether an object belongs to an application (not to `kube-system`).
fn is_app(meta: &ObjectMeta) -> bool {
    meta.namespace.as_deref() != Some(SYSTEM_NAMESPACE)
}

impl Model {
    /// Switches the crash loop of the workloads outside `kube-system`. Turning it off keeps the
    /// restarts the pods went through.
    pub fn set_crashloop(&mut self, on: bool) {
        match (on, self.crashloop_since) {
            (true, None) => self.crashloop_since = Some(Instant::now()),
            (false, Some(_)) => {
                let pods = self.served_pods();
                self.crashloop_since = None;
                for mut pod in pods {
                    if !is_app(&pod.metadata) {
                        continue;
                    }
                    // Back to running, with the restarts counted so far.
                    if let Some(cs) = pod
                        .status
                        .as_mut()
                        .and_then(|s| s.container_statuses.as_mut())
                    {
                        for c in cs {
                            c.ready = true;
                            c.started = Some(true);
                            c.state = Some(running());
                        }
                    }
                    self.upsert_pod(pod);
                }
            }
            _ => {}
        }
    }

    /// Restarts each crash-looping container has gone through by now (0 when healthy).
    fn crash_restarts(&self) -> Option<i32> {
        let since = self.crashloop_since?;
        let cycles = since.elapsed().as_millis() / CRASHLOOP_RESTART_INTERVAL.as_millis().max(1);
        Some(i32::try_from(cycles).unwrap_or(i32::MAX).saturating_add(1))
    }

    /// The pods as served: under a crash loop, those outside `kube-system` wait in
    /// `CrashLoopBackOff` with restarts growing over time.
    pub fn served_pods(&self) -> Vec<Pod> {
        let Some(extra) = self.crash_restarts() else {
            return self.pods.clone();
        };
        let mut pods = self.pods.clone();
        for pod in pods.iter_mut().filter(|p| is_app(&p.metadata)) {
            let Some(cs) = pod
                .status
                .as_mut()
                .and_then(|s| s.container_statuses.as_mut())
            else {
                continue;
            };
            for c in cs {
                c.restart_count = c.restart_count.saturating_add(extra);
                c.ready = false;
                c.started = Some(false);
                c.state = Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(CRASH_LOOP_BACK_OFF.to_owned()),
                        message: Some(format!(
                            "back-off restarting failed container {} in pod {}",
                            c.name,
                            pod.metadata.name.as_deref().unwrap_or_default()
                        )),
                    }),
                    ..ContainerState::default()
                });
                c.last_state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 1,
                        reason: Some("Error".to_owned()),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                });
            }
        }
        pods
    }

    /// Deployments as served: under a crash loop, none outside `kube-system` is available.
    pub fn served_deployments(&self) -> Vec<Deployment> {
        let mut items = self.deployments.clone();
        if self.crashloop_since.is_some() {
            for d in items.iter_mut().filter(|d| is_app(&d.metadata)) {
                if let Some(s) = d.status.as_mut() {
                    s.available_replicas = Some(0);
                    s.ready_replicas = Some(0);
                    s.unavailable_replicas = s.replicas.filter(|r| *r > 0);
                }
            }
        }
        items
    }

    /// Daemon sets as served (see [`Model::served_deployments`]).
    pub fn served_daemonsets(&self) -> Vec<DaemonSet> {
        let mut items = self.daemonsets.clone();
        if self.crashloop_since.is_some() {
            for d in items.iter_mut().filter(|d| is_app(&d.metadata)) {
                if let Some(s) = d.status.as_mut() {
                    s.number_available = Some(0);
                    s.number_ready = 0;
                    s.number_unavailable = Some(s.desired_number_scheduled).filter(|n| *n > 0);
                }
            }
        }
        items
    }

    /// Stateful sets as served (see [`Model::served_deployments`]).
    pub fn served_statefulsets(&self) -> Vec<StatefulSet> {
        let mut items = self.statefulsets.clone();
        if self.crashloop_since.is_some() {
            for s in items.iter_mut().filter(|s| is_app(&s.metadata)) {
                if let Some(st) = s.status.as_mut() {
                    st.available_replicas = Some(0);
                    st.ready_replicas = Some(0);
                }
            }
        }
        items
    }
}
