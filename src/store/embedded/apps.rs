//! Apps in the embedded store: the `apps` table and the `api_keys` index, changed together.

use async_trait::async_trait;
use redb::ReadableTable;

use super::EmbeddedStore;
use super::tables::{API_KEYS, APPS, SUBSCRIPTION_COUNTS, SUBSCRIPTIONS, get_json, json_values};
use crate::store::{App, AppStore, StoreResult, from_json, to_json};

#[async_trait]
impl AppStore for EmbeddedStore {
    async fn put_app(&self, app: &App) -> StoreResult<()> {
        let app = app.clone();
        self.write(move |txn| {
            let mut apps = txn.open_table(APPS)?;
            let previous: Option<App> = get_json(&apps, app.id.as_str(), "app")?;
            let mut keys = txn.open_table(API_KEYS)?;
            if let Some(previous) = previous {
                for hash in previous.key_hashes() {
                    keys.remove(hash.as_slice())?;
                }
            }
            for hash in app.key_hashes() {
                keys.insert(hash.as_slice(), app.id.as_str())?;
            }
            apps.insert(app.id.as_str(), to_json(&app)?.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| get_json(&txn.open_table(APPS)?, app_id.as_str(), "app"))
            .await
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        self.read(|txn| {
            let apps = txn.open_table(APPS)?;
            json_values(apps.iter()?, "app")
        })
        .await
    }

    async fn app_by_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<App>> {
        let key_hash = *key_hash;
        self.read(move |txn| {
            let keys = txn.open_table(API_KEYS)?;
            let Some(app_id) = keys.get(key_hash.as_slice())? else {
                return Ok(None);
            };
            get_json(&txn.open_table(APPS)?, app_id.value(), "app")
        })
        .await
    }

    async fn delete_app(&self, app_id: &str) -> StoreResult<bool> {
        let app_id = app_id.to_owned();
        self.write(move |txn| {
            let mut apps = txn.open_table(APPS)?;
            let Some(previous) = apps.remove(app_id.as_str())?.map(|v| v.value().to_vec()) else {
                return Ok(false);
            };
            let previous: App = from_json(&previous, "app")?;
            let mut keys = txn.open_table(API_KEYS)?;
            for hash in previous.key_hashes() {
                keys.remove(hash.as_slice())?;
            }
            txn.open_table(SUBSCRIPTIONS)?.retain_in(
                (app_id.as_str(), 0, 0)..=(app_id.as_str(), u16::MAX, u64::MAX),
                |_, _| false,
            )?;
            txn.open_table(SUBSCRIPTION_COUNTS)?
                .remove(app_id.as_str())?;
            Ok(true)
        })
        .await
    }
}
