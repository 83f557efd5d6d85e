//! Borrowed names of one thing of one app (a webhook, a trigger, a person's profile): the two
//! strings that the store's per-thing calls take, in a type of their own so that no call can
//! pass them the wrong way round. Each owner type converts into its own (`From<&Webhook>`,
//! `From<&Trigger>`) beside its definition.

/// Declares one such name: `app_id` and the thing's own id under the name given.
macro_rules! app_ref {
    ($(#[$meta:meta])* $name:ident { $id:ident }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a> {
            pub app_id: &'a str,
            pub $id: &'a str,
        }

        impl<'a> $name<'a> {
            pub const fn new(app_id: &'a str, $id: &'a str) -> Self {
                Self { app_id, $id }
            }
        }
    };
}

app_ref!(
    /// One webhook of one app, by its id.
    WebhookRef { id }
);
app_ref!(
    /// One trigger of one app, by its name.
    TriggerRef { name }
);
app_ref!(
    /// One person's profile in one app, by the CRM's id for them (`external_id`).
    ProfileRef { external_id }
);
