//! Apps in the store: one record per app, and the index from API-key hashes to apps.

use async_trait::async_trait;

use super::{App, StoreResult};

#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates or replaces an app; its API-key index follows (a rotated key stops working at
    /// once), in one atomic change.
    async fn put_app(&self, app: &App) -> StoreResult<()>;
    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>>;
    async fn list_apps(&self) -> StoreResult<Vec<App>>;
    async fn app_by_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<App>>;
    /// Deletes an app, its key index entries, its subscriptions and their count; `false` when
    /// it did not exist. (Its profiles and notification documents stay, unreachable by any key.)
    async fn delete_app(&self, app_id: &str) -> StoreResult<bool>;
}
