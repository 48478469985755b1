//! `update`, `get`, `list`, `create` and `delete`: one SDK call each, its answer printed as JSON.

use std::io::Write;

use intune_user_status::{
    CallOptions, Client, Collection, ListOptions, Target, UpdateOutcome, UserStatusPatch,
};
use serde::Serialize;

use crate::args::{At, ResourceCommand, Update};
use crate::exit::Failure;
use crate::input::json_arg;

impl At {
    /// The user status `status_id` of `config_id` by this route (the SDK's route rules).
    fn target(&self, config_id: &str, status_id: &str) -> Result<Target, Failure> {
        let certificate_id = self.certificate_id.as_deref();
        Ok(Target::from_route(
            config_id,
            &self.route,
            certificate_id,
            status_id,
        )?)
    }

    /// The collection of `config_id` by this route.
    fn collection(&self, config_id: &str) -> Result<Collection, Failure> {
        let certificate_id = self.certificate_id.as_deref();
        Ok(Collection::from_route(
            config_id,
            &self.route,
            certificate_id,
        )?)
    }

    /// The call's API version, when given.
    pub fn options(&self) -> CallOptions {
        match self.api_version {
            Some(version) => CallOptions::new().api_version(version),
            None => CallOptions::new(),
        }
    }
}

impl Update {
    /// The user status it names and the patch it sets, each checked by the SDK.
    pub fn parts(&self) -> Result<(Target, UserStatusPatch), Failure> {
        let target = self.at.target(&self.config_id, &self.status_id)?;
        let patch = json_arg("--patch", &self.patch)?;
        Ok((target, UserStatusPatch::from_json(&patch)?))
    }
}

/// Runs one of the single-resource commands, printing its answer to `out`.
pub fn run(
    client: &Client,
    command: &ResourceCommand,
    out: &mut impl Write,
) -> Result<(), Failure> {
    match command {
        ResourceCommand::Update(update) => {
            let (target, patch) = update.parts()?;
            match client.update_user_status_with(&target, &patch, &update.at.options())? {
                UpdateOutcome::NoContent => Ok(()),
                UpdateOutcome::Updated(entity) | UpdateOutcome::Fetched(entity) => {
                    print(out, &entity)
                }
            }
        }
        ResourceCommand::Get {
            config_id,
            status_id,
            at,
        } => {
            let target = at.target(config_id, status_id)?;
            print(out, &client.get_user_status_with(&target, &at.options())?)
        }
        ResourceCommand::List {
            config_id,
            top,
            filter,
            select,
            max_pages,
            at,
        } => {
            let mut list = ListOptions::new();
            if let Some(top) = top {
                list = list.top(*top);
            }
            if let Some(filter) = filter {
                list = list.filter(filter);
            }
            if !select.is_empty() {
                list = list.select(select);
            }
            if let Some(pages) = max_pages {
                list = list.max_pages(*pages);
            }
            let collection = at.collection(config_id)?;
            print(
                out,
                &client.list_user_statuses_with(&collection, &list, &at.options())?,
            )
        }
        ResourceCommand::Create {
            config_id,
            entity,
            at,
        } => {
            let collection = at.collection(config_id)?;
            let entity = UserStatusPatch::from_json(&json_arg("--entity", entity)?)?;
            print(
                out,
                &client.create_user_status_with(&collection, &entity, &at.options())?,
            )
        }
        ResourceCommand::Delete {
            config_id,
            status_id,
            at,
        } => {
            let target = at.target(config_id, status_id)?;
            Ok(client.delete_user_status_with(&target, &at.options())?)
        }
    }
}

/// Writes `value` as one line of JSON.
pub fn print(out: &mut impl Write, value: &impl Serialize) -> Result<(), Failure> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|err| Failure::failed(format!("cannot write the answer: {err}")))?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
