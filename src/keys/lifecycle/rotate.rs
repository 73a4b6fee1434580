//! Staged rotation (begin, promote, retire) and revocation of an existing key, in the commit
//! order the parent module describes.

use super::super::{store, KeySpec, VersionInfo, VersionState};
use super::{refuse_audit_key, Lifecycle, Material};
use crate::error::{Error, Result};

impl Lifecycle<'_> {
    /// `rotate begin`: a new version, pending.
    pub(crate) fn begin(
        &self,
        name: &str,
        spec: &KeySpec,
        material: Material,
    ) -> Result<VersionInfo> {
        let _serial = self.serialise()?;
        let lease = self.token.lease()?;
        let session = lease.session();
        let found = self.find(session, name)?;
        refuse_audit_key(&found.meta, "rotated")?;
        let kind = material.kind();
        if found.meta.kind != kind {
            return Err(Error::WrongKeyKind {
                name: name.to_owned(),
                kind: found.meta.kind.name().into(),
                wanted: format!("a new {kind} version"),
            });
        }
        if let Some(p) = found
            .meta
            .versions
            .iter()
            .find(|v| v.state == VersionState::Pending)
        {
            return Err(Error::Lifecycle(format!(
                "key `{name}` already has pending version v{}; promote or revoke it first",
                p.version
            )));
        }
        store::reconcile(session, name).map_err(Self::ck)?;
        let mut step = self.faults.steps();
        let version = found.meta.next_version();
        let (record, seal) =
            self.make_version(session, &found.meta, version, spec, material, &mut step)?;
        let mut meta = found.meta.clone();
        meta.revision += 1;
        meta.versions.push(record.clone());
        meta.seals.extend(seal.map(|blob| (version, blob)));
        // A new version keeps the credentials of the one it replaces unless the spec brings new
        // ones (an exchange that issues a new API key with a new secret).
        let credentials = spec.credentials();
        let credentials = if credentials.is_empty() {
            found
                .meta
                .active()
                .and_then(|a| found.meta.credentials.get(&a.version))
                .cloned()
                .unwrap_or_default()
        } else {
            credentials
        };
        if !credentials.is_empty() {
            meta.credentials.insert(version, credentials);
        }
        store::update_meta(session, &found, &meta, &mut step).inspect_err(|e| {
            if !matches!(e, Error::InjectedFault { .. }) {
                let _ = store::reconcile(session, name);
            }
        })?;
        self.cache.forget(self.token, name);
        tracing::info!(key = name, version, "rotation begun: new version pending");
        Ok(record)
    }

    /// `rotate promote`: the pending version becomes active, the active one previous.
    pub(crate) fn promote(&self, name: &str) -> Result<VersionInfo> {
        let _serial = self.serialise()?;
        let lease = self.token.lease()?;
        let session = lease.session();
        let found = self.find(session, name)?;
        let pending = found
            .meta
            .versions
            .iter()
            .find(|v| v.state == VersionState::Pending)
            .map(|v| v.version)
            .ok_or_else(|| {
                Error::Lifecycle(format!(
                    "key `{name}` has no pending version to promote; run `key rotate begin` first"
                ))
            })?;
        store::reconcile(session, name).map_err(Self::ck)?;
        if store::find_version_object(session, &found.meta, pending)
            .map_err(Self::ck)?
            .is_none()
        {
            return Err(Error::Lifecycle(format!(
                "pending version v{pending} of `{name}` has no key object; revoke it and begin again"
            )));
        }
        let mut meta = found.meta.clone();
        meta.revision += 1;
        for v in &mut meta.versions {
            match v.state {
                VersionState::Active => v.state = VersionState::Previous,
                VersionState::Pending => v.state = VersionState::Active,
                _ => {}
            }
        }
        let mut step = self.faults.steps();
        store::update_meta(session, &found, &meta, &mut step)?;
        self.cache.forget(self.token, name);
        tracing::info!(key = name, version = pending, "rotation promoted");
        meta.version(pending)
            .cloned()
            .ok_or_else(|| Error::Lifecycle("promoted version vanished".into()))
    }

    /// `rotate retire`: destroys previous versions (all, or the one named).
    pub(crate) fn retire(&self, name: &str, version: Option<u32>) -> Result<Vec<u32>> {
        self.end(name, version, VersionState::Retired)
    }

    /// `revoke`: destroys a version, or every usable version, at once.
    pub(crate) fn revoke(&self, name: &str, version: Option<u32>) -> Result<Vec<u32>> {
        self.end(name, version, VersionState::Revoked)
    }

    fn end(&self, name: &str, version: Option<u32>, to: VersionState) -> Result<Vec<u32>> {
        let _serial = self.serialise()?;
        let lease = self.token.lease()?;
        let session = lease.session();
        let found = self.find(session, name)?;
        refuse_audit_key(
            &found.meta,
            if to == VersionState::Retired {
                "retired"
            } else {
                "revoked"
            },
        )?;
        store::reconcile(session, name).map_err(Self::ck)?;
        let eligible = |v: &VersionInfo| match to {
            VersionState::Retired => v.state == VersionState::Previous,
            _ => v.state.is_usable(),
        };
        let targets: Vec<u32> = match version {
            Some(n) => {
                let v = found.meta.version(n).ok_or(Error::VersionNotFound {
                    name: name.to_owned(),
                    version: n,
                })?;
                if !eligible(v) {
                    return Err(Error::Lifecycle(match to {
                        VersionState::Retired => format!(
                            "v{n} of `{name}` is {}; retire only removes previous versions (use `key revoke` to destroy an active or pending one)",
                            v.state.name()
                        ),
                        _ => format!("v{n} of `{name}` is already {}", v.state.name()),
                    }));
                }
                vec![n]
            }
            None => found
                .meta
                .versions
                .iter()
                .filter(|v| eligible(v))
                .map(|v| v.version)
                .collect(),
        };
        if targets.is_empty() {
            return Err(Error::Lifecycle(match to {
                VersionState::Retired => format!("key `{name}` has no previous version to retire"),
                _ => format!("key `{name}` has no usable version left to revoke"),
            }));
        }
        let mut meta = found.meta.clone();
        meta.revision += 1;
        for v in meta
            .versions
            .iter_mut()
            .filter(|v| targets.contains(&v.version))
        {
            v.state = to;
        }
        // A version that can no longer sign keeps no seal (its KEK goes with its objects below).
        meta.seals.retain(|v, _| !targets.contains(v));
        meta.credentials.retain(|v, _| !targets.contains(v));
        let mut step = self.faults.steps();
        store::update_meta(session, &found, &meta, &mut step)?;
        // Committed: from here on no process signs with these versions (in-process copies go
        // first, so nothing signs while the objects are destroyed).
        self.cache.forget(self.token, name);
        let _exclusive = self.token.destroy_guard();
        // Only what the committed metadata, read again now, no longer lists as usable: the
        // same as `meta` under the lifecycle lock, and never a version another writer (one
        // that does not take the lock) committed meanwhile.
        let committed = store::find_meta(session, name).map_err(Self::ck)?;
        let gone = |v: u32| {
            targets.contains(&v)
                && committed
                    .as_ref()
                    .and_then(|c| c.meta.version(v))
                    .is_none_or(|v| !v.state.is_usable())
        };
        for (v, handle) in store::version_objects(session, name).map_err(Self::ck)? {
            if gone(v) {
                step()?;
                session.destroy_object(handle).map_err(Self::ck)?;
            }
        }
        // Adopted versions keep their foreign id: find them through the metadata.
        for v in meta
            .versions
            .iter()
            .filter(|v| gone(v.version) && v.object_id.is_some())
        {
            if let Some(handle) =
                store::find_version_object(session, &meta, v.version).map_err(Self::ck)?
            {
                step()?;
                session.destroy_object(handle).map_err(Self::ck)?;
            }
        }
        tracing::warn!(key = name, versions = ?targets, state = to.name(), "key versions destroyed");
        Ok(targets)
    }
}
