//! Short forms of the two reqwest chains every HTTP test writes: send a request (a transport
//! error fails the test there) and read a JSON answer.

use std::future::Future;

use reqwest::{RequestBuilder, Response};
use serde::de::DeserializeOwned;

pub trait Fetch {
    /// Sends the request; the server must answer (any status).
    fn sent(self) -> impl Future<Output = Response> + Send;
    /// Sends the request and decodes its body as JSON (any status).
    fn json_body<T: DeserializeOwned>(self) -> impl Future<Output = T> + Send;
}

impl Fetch for RequestBuilder {
    async fn sent(self) -> Response {
        self.send().await.expect("the server answers")
    }

    async fn json_body<T: DeserializeOwned>(self) -> T {
        self.sent().await.json().await.expect("a JSON body")
    }
}
