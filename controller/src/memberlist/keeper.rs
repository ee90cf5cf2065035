//! The shell: while this replica leads, make sure the memberlist Secret
//! exists, at leadership start and every `--memberlist-secret-check-interval`.
//!
//! API calls: only `get` on the one Secret name and `create` on Secrets in
//! the controller's namespace (RBAC can limit `get` by `resourceNames`,
//! not `create`). No list or watch: a deleted Secret is noticed by the
//! next periodic `get` (a 404) and created again. An existing Secret is
//! never updated or patched; a 409 on create means someone else created it
//! meanwhile, which is success.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::{assess, new_secret, Reported, INVALID_REASON, KEY_BYTES};
use crate::events::Publisher;
use crate::index::Event;
use crate::metrics::Metrics;

/// What the keeper needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The controller's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// How often the leader checks it.
    pub interval: Duration,
}

/// Why a check failed; logged, and retried at the next interval.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the Secret failed (not a 404).
    #[error("reading Secret {namespace}/{name}: {source}")]
    Get {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating it failed (not a 409).
    #[error(
        "creating Secret {namespace}/{name}: {source}; the speakers run without gossip until it \
         exists (the controller needs RBAC verb create on secrets in {namespace})"
    )]
    Create {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// Runs until `stop` turns true: checks at every gain of leadership and
/// every interval while leading; nothing while standing by.
pub async fn run(
    client: Client,
    settings: Settings,
    mut leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    events: Publisher,
    metrics: Metrics,
) {
    let api: Api<Secret> = Api::namespaced(client, &settings.namespace);
    let mut keeper = Keeper {
        api,
        settings,
        events,
        metrics,
        reported: Reported::default(),
    };
    loop {
        // Stand by until leading.
        tokio::select! {
            r = leader.wait_for(|l| *l) => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        keeper.reported.clear();
        loop {
            keeper.check().await;
            tokio::select! {
                () = tokio::time::sleep(keeper.settings.interval) => {}
                r = leader.wait_for(|l| !*l) => {
                    if r.is_err() { return }
                    break;
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        // Only the leader's view counts; a standby exports nothing.
        keeper
            .metrics
            .clear_memberlist_secret(&keeper.settings.name);
    }
}

struct Keeper {
    api: Api<Secret>,
    settings: Settings,
    events: Publisher,
    metrics: Metrics,
    reported: Reported,
}

impl Keeper {
    async fn check(&mut self) {
        if let Err(e) = self.ensure().await {
            error!(error = %e, "memberlist Secret check failed; retrying at the next interval");
        }
    }

    async fn ensure(&mut self) -> Result<(), Error> {
        let name = self.settings.name.clone();
        let existing = self.api.get_opt(&name).await.map_err(|source| Error::Get {
            namespace: self.settings.namespace.clone(),
            name: name.clone(),
            source,
        })?;
        let secret = match existing {
            Some(secret) => secret,
            None => match self.create().await? {
                Some(created) => created,
                // Created by someone else meanwhile: look at theirs.
                None => match self.api.get_opt(&name).await {
                    Ok(Some(theirs)) => theirs,
                    _ => return Ok(()),
                },
            },
        };
        self.judge(&secret).await;
        Ok(())
    }

    /// Creates the Secret; `None` if it already existed (409).
    async fn create(&self) -> Result<Option<Secret>, Error> {
        let (namespace, name) = (&self.settings.namespace, &self.settings.name);
        let mut random = [0u8; KEY_BYTES];
        rand::fill(&mut random);
        let secret = new_secret(namespace, name, random);
        match self.api.create(&PostParams::default(), &secret).await {
            Ok(created) => {
                info!(
                    namespace = %namespace,
                    secret = %name,
                    "created the memberlist Secret with a random key; speakers start gossip when kubelet mounts it"
                );
                Ok(Some(created))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                debug!(secret = %name, "the memberlist Secret was created meanwhile");
                Ok(None)
            }
            Err(source) => {
                self.metrics.set_memberlist_secret_ok(name, false);
                Err(Error::Create {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })
            }
        }
    }

    /// Reports an unusable Secret (log and one Event per distinct
    /// problem, metric always); never changes it.
    async fn judge(&mut self, secret: &Secret) {
        let name = &self.settings.name;
        match assess(secret) {
            Ok(()) => {
                self.metrics.set_memberlist_secret_ok(name, true);
                self.reported.clear();
            }
            Err(problem) => {
                self.metrics.set_memberlist_secret_ok(name, false);
                let uid = secret.metadata.uid.clone().unwrap_or_default();
                if !self.reported.is_new(&uid, &problem) {
                    return;
                }
                error!(
                    namespace = %self.settings.namespace,
                    secret = %name,
                    problem = problem.kind(),
                    "{problem}"
                );
                let event = Event {
                    regarding: ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Secret".into()),
                        name: Some(name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        uid: secret.metadata.uid.clone(),
                        resource_version: secret.metadata.resource_version.clone(),
                        ..Default::default()
                    },
                    warning: true,
                    reason: INVALID_REASON,
                    note: problem.to_string(),
                };
                if let Err(e) = self.events.publish(&event).await {
                    warn!(secret = %name, error = %e, "cannot publish the InvalidMemberlistSecret Event; retrying at the next check");
                    self.reported.clear();
                }
            }
        }
    }
}
