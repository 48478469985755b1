//! A `userStatuses` collection: what list and create address (a [`Target`] without its id).

use crate::target::{Parent, ParentId};
use crate::{ApiVersion, Error, Route, Target};

/// The `userStatuses` collection under a device configuration (through any documented route) or
/// under an Autopilot deployment profile: what [`Client::list_user_statuses`] reads and
/// [`Client::create_user_status`] adds to.
///
/// ```
/// use intune_user_status::{Collection, Route, Target};
/// let direct = Collection::new("config-1");
/// let nested = Collection::with_route("config-1", Route::IdentityCertificate);
/// assert_eq!(direct.target("status-1"), Target::new("config-1", "status-1"));
/// assert_eq!(Target::new("config-1", "status-1").collection(), direct);
/// # let _ = nested;
/// ```
///
/// [`Client::list_user_statuses`]: crate::Client::list_user_statuses
/// [`Client::create_user_status`]: crate::Client::create_user_status
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Collection {
    parent: Parent,
}

impl Collection {
    /// `/deviceManagement/deviceConfigurations/{id}/userStatuses`.
    pub fn new(device_configuration_id: impl Into<String>) -> Collection {
        Collection::with_route(device_configuration_id, Route::Direct)
    }

    /// The collection under a device configuration, through `route`.
    pub fn with_route(device_configuration_id: impl Into<String>, route: Route) -> Collection {
        Target::with_route(device_configuration_id, route, String::new()).collection()
    }

    /// The Autopilot domain join collection (beta).
    pub fn autopilot_domain_join(profile_id: impl Into<String>) -> Collection {
        Target::autopilot_domain_join(profile_id, String::new()).collection()
    }

    /// Names a collection from the route as the documentation page writes it, as
    /// [`Target::from_route`] does.
    pub fn from_route(
        parent_id: impl Into<String>,
        route: &str,
        certificate_id: Option<&str>,
    ) -> Result<Collection, Error> {
        Target::from_route(parent_id, route, certificate_id, String::new()).map(|t| t.collection())
    }

    /// The route rules of [`Target::under`], for a collection.
    pub(crate) fn under(
        parent: ParentId,
        route: &str,
        certificate_id: Option<&str>,
    ) -> Result<Collection, Error> {
        Target::under(parent, route, certificate_id, String::new()).map(|t| t.collection())
    }

    /// The user status `user_status_id` in this collection.
    pub fn target(&self, user_status_id: impl Into<String>) -> Target {
        Target::from_parent(self.parent.clone(), user_status_id.into())
    }

    /// The route under the device configuration (`None` for the Autopilot collection).
    pub fn route(&self) -> Option<&Route> {
        self.parent.route()
    }

    /// Checks the ids and the version, then appends `/{version}/deviceManagement/.../userStatuses`
    /// to `url` (the service root).
    pub(crate) fn write_url(&self, url: &mut String, version: ApiVersion) -> Result<(), Error> {
        self.parent.write_collection_url(url, version)
    }
}

impl Target {
    /// The collection this user status belongs to.
    pub fn collection(&self) -> Collection {
        Collection {
            parent: self.parent().clone(),
        }
    }
}
