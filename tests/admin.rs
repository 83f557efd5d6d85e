//! The admin API and scoped keys over real HTTP, against a running `aviso serve` on each store
//! backend: apps changed while serving (origins hold at once, also through `aviso apps`),
//! deleted, keys rotated with an overlap, a `read` key refused what it may not do, and one
//! app's key kept away from another app's data.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use support::http::Fetch;
use support::server::Aviso;

/// A request with `Authorization: Bearer key`.
fn with_key(request: RequestBuilder, key: &str) -> RequestBuilder {
    request.header("authorization", format!("Bearer {key}"))
}

async fn answer(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.sent().await;
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The answer must be a problem document with `status` (and, when given, naming `field`).
fn assert_problem(got: &(StatusCode, Value), status: StatusCode, field: Option<&str>) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["status"], status.as_u16(), "{}", got.1);
    assert!(
        got.1["detail"].as_str().is_some_and(|d| d.len() > 10),
        "{}",
        got.1
    );
    if let Some(field) = field {
        assert_eq!(got.1["field"], field, "{}", got.1);
    }
}

/// Fetches the app's VAPID key as a page of `origin` would (CORS).
async fn from_origin(client: &Client, aviso: &Aviso, app_id: &str, origin: &str) -> StatusCode {
    client
        .get(aviso.url(&format!("/v1/apps/{app_id}/vapid-public-key")))
        .header("origin", origin)
        .sent()
        .await
        .status()
}

/// `aviso apps …` against the running server, with the admin key.
fn cli_command(aviso: &Aviso, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aviso"));
    command
        .args(args)
        .args(["--server", &aviso.base, "--admin-key", &aviso.admin_key])
        .env_remove("AVISO_REDIS_URL")
        .env_remove("AVISO_DATA_DIR");
    command
}

/// `aviso apps …`, whatever its outcome.
fn run_cli(aviso: &Aviso, args: &[&str]) -> std::process::Output {
    cli_command(aviso, args).output().unwrap()
}

/// `aviso apps …` that must succeed; its stdout.
fn cli(aviso: &Aviso, args: &[&str]) -> String {
    support::command::stdout_of(&mut cli_command(aviso, args))
}

/// A new app made through the admin API: (app id, its send key).
async fn new_app(client: &Client, aviso: &Aviso, name: &str) -> (String, String) {
    let created = answer(
        with_key(client.post(aviso.url("/v1/admin/apps")), &aviso.admin_key)
            .json(&json!({"name": name, "origins": ["https://b.example"]})),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    (
        created.1["app_id"].as_str().unwrap().to_owned(),
        created.1["api_key"].as_str().unwrap().to_owned(),
    )
}

pub async fn apps_change_while_serving(aviso: Aviso) {
    let client = Client::new();
    assert!(
        aviso.admin_key.starts_with("av_"),
        "serve printed the admin key"
    );
    let app_path = aviso.url(&format!("/v1/admin/apps/{}", aviso.app_id));

    // Before: the shop is not an allowed origin (and this answer is now in the app cache).
    assert_eq!(
        from_origin(&client, &aviso, &aviso.app_id, "https://shop.example").await,
        StatusCode::FORBIDDEN
    );
    let updated = answer(
        with_key(client.patch(&app_path), &aviso.admin_key)
            .json(&json!({"origins": ["https://shop.example/any/path", "http://127.0.0.1:3000"], "name": "Shop", "demo": false})),
    )
    .await;
    assert_eq!(updated.0, StatusCode::OK, "{}", updated.1);
    assert_eq!(
        updated.1["origins"],
        json!(["https://shop.example", "http://127.0.0.1:3000"])
    );
    assert_eq!(updated.1["name"], "Shop");
    assert_eq!(updated.1["demo"], false);
    // At once: no wait for a cache to expire.
    assert_eq!(
        from_origin(&client, &aviso, &aviso.app_id, "https://shop.example").await,
        StatusCode::OK
    );
    let got = answer(with_key(client.get(&app_path), &aviso.admin_key)).await;
    assert_eq!(got.1["origins"], updated.1["origins"]);
    assert!(
        !got.1.to_string().contains(&aviso.api_key),
        "keys are never shown again"
    );

    // The command line talks to the running server: nothing had to stop.
    cli(
        &aviso,
        &[
            "apps",
            "update",
            "--app",
            &aviso.app_id,
            "--add-origin",
            "https://blog.example",
            "--remove-origin",
            "http://127.0.0.1:3000",
        ],
    );
    assert_eq!(
        from_origin(&client, &aviso, &aviso.app_id, "https://blog.example").await,
        StatusCode::OK
    );
    assert_eq!(
        from_origin(&client, &aviso, &aviso.app_id, "http://127.0.0.1:3000").await,
        StatusCode::FORBIDDEN
    );
    let listed = cli(&aviso, &["apps", "list", "--json"]);
    let listed: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(
        listed["origins"],
        json!(["https://shop.example", "https://blog.example"])
    );

    // Bad input names the field.
    assert_problem(
        &answer(
            with_key(client.patch(&app_path), &aviso.admin_key)
                .json(&json!({"origins": ["https://ok.example", "shop.example"]})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some("origins[1]"),
    );
    assert_problem(
        &answer(with_key(client.patch(&app_path), &aviso.admin_key).json(&json!({"name": " "})))
            .await,
        StatusCode::BAD_REQUEST,
        Some("name"),
    );
    assert_problem(
        &answer(
            with_key(client.patch(&app_path), &aviso.admin_key).json(&json!({"colour": "red"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        None,
    );
    assert_problem(
        &answer(
            with_key(
                client.patch(aviso.url("/v1/admin/apps/nope")),
                &aviso.admin_key,
            )
            .json(&json!({"demo": true})),
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );

    // A created app works at once; deleted, its key and public API stop.
    let (other, other_key) = new_app(&client, &aviso, "Blog").await;
    assert_eq!(
        answer(with_key(client.get(aviso.url("/v1/app")), &other_key))
            .await
            .0,
        StatusCode::OK
    );
    let deleted = with_key(
        client.delete(aviso.url(&format!("/v1/admin/apps/{other}"))),
        &aviso.admin_key,
    )
    .sent()
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_problem(
        &answer(with_key(client.get(aviso.url("/v1/app")), &other_key)).await,
        StatusCode::UNAUTHORIZED,
        None,
    );
    assert_eq!(
        from_origin(&client, &aviso, &other, "https://b.example").await,
        StatusCode::NOT_FOUND
    );
    // The app holding the admin key is not deleted from under it.
    assert_problem(
        &answer(with_key(client.delete(&app_path), &aviso.admin_key)).await,
        StatusCode::FORBIDDEN,
        None,
    );
}

pub async fn the_apps_commands_work_against_the_running_server(aviso: Aviso) {
    let client = Client::new();
    let created: Value = serde_json::from_str(&cli(
        &aviso,
        &[
            "apps",
            "create",
            "--name",
            "Blog",
            "--origin",
            "https://blog.example/",
            "--json",
        ],
    ))
    .unwrap();
    let app = created["app_id"].as_str().unwrap().to_owned();
    assert_eq!(created["origins"], json!(["https://blog.example"]));
    let send_key = created["api_key"].as_str().unwrap().to_owned();
    let issued: Value = serde_json::from_str(&cli(
        &aviso,
        &[
            "apps",
            "issue-key",
            "--app",
            &app,
            "--scope",
            "read",
            "--json",
        ],
    ))
    .unwrap();
    let read_key = issued["api_key"].as_str().unwrap().to_owned();
    let own = answer(with_key(client.get(aviso.url("/v1/app")), &read_key)).await;
    assert_eq!(
        (own.1["app_id"].as_str(), own.1["scope"].as_str()),
        (Some(app.as_str()), Some("read"))
    );
    let shown: Value =
        serde_json::from_str(&cli(&aviso, &["apps", "show", "--app", &app, "--json"])).unwrap();
    assert_eq!(shown["keys"].as_array().unwrap().len(), 2, "{shown}");
    let rotated: Value = serde_json::from_str(&cli(
        &aviso,
        &[
            "apps",
            "rotate-key",
            "--app",
            &app,
            "--overlap-seconds",
            "0",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(
        answer(with_key(client.get(aviso.url("/v1/app")), &send_key))
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "no overlap: the old key stops at once"
    );
    let new_key = rotated["api_key"].as_str().unwrap();
    assert_eq!(
        answer(with_key(client.get(aviso.url("/v1/app")), new_key))
            .await
            .0,
        StatusCode::OK
    );
    cli(
        &aviso,
        &[
            "apps",
            "revoke-key",
            "--app",
            &app,
            "--key",
            issued["key"]["id"].as_str().unwrap(),
        ],
    );
    assert_eq!(
        answer(with_key(client.get(aviso.url("/v1/app")), &read_key))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    cli(&aviso, &["apps", "delete", "--app", &app]);
    assert_eq!(
        answer(with_key(client.get(aviso.url("/v1/app")), new_key))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // The server's refusal, in its own words, and a failing exit code.
    let refused = run_cli(&aviso, &["apps", "show", "--app", &app]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

pub async fn rotated_keys_overlap_then_stop(aviso: Aviso) {
    let client = Client::new();
    let keys = aviso.url(&format!("/v1/admin/apps/{}/keys", aviso.app_id));
    let works = |key: String| {
        let request = with_key(client.get(aviso.url("/v1/notifications")), &key);
        async move { request.sent().await.status() }
    };
    assert_eq!(works(aviso.api_key.clone()).await, StatusCode::OK);
    // A rotation of the send key, the old one working `overlap_seconds` more: its answer.
    let rotate = |overlap_seconds: u64| {
        let request = with_key(client.post(&keys), &aviso.admin_key)
            .json(&json!({"scope": "send", "rotate": true, "overlap_seconds": overlap_seconds}));
        async move {
            let rotated = answer(request).await;
            assert_eq!(rotated.0, StatusCode::CREATED, "{}", rotated.1);
            rotated.1
        }
    };

    let rotated = rotate(1).await;
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["key"]["scope"], "send");
    let old = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scope"] == "send")
        .expect("the old send key is listed with its end");
    assert!(old["expires_at_ms"].as_u64().is_some(), "{old}");
    // Both work through the overlap; the admin key (another scope) is left alone.
    assert_eq!(works(new_key.clone()).await, StatusCode::OK);
    assert_eq!(works(aviso.api_key.clone()).await, StatusCode::OK);
    // Then the old one stops (bounded wait: the overlap is one second).
    let deadline = Instant::now() + Duration::from_secs(15);
    while works(aviso.api_key.clone()).await == StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the old key still works after its overlap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(works(aviso.api_key.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(works(new_key.clone()).await, StatusCode::OK);
    assert_eq!(works(aviso.admin_key.clone()).await, StatusCode::OK);

    // Overlap 0 stops the old key at once; a revoked key stops at once too.
    let again = rotate(0).await;
    assert_eq!(works(new_key).await, StatusCode::UNAUTHORIZED);
    let newest = again["api_key"].as_str().unwrap().to_owned();
    let id = again["key"]["id"].as_str().unwrap().to_owned();
    let revoked = with_key(client.delete(format!("{keys}/{id}")), &aviso.admin_key)
        .sent()
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(works(newest).await, StatusCode::UNAUTHORIZED);

    for (body, field) in [
        (json!({"scope": "root"}), None),
        (
            json!({"scope": "send", "rotate": true, "overlap_seconds": 99_999_999}),
            Some("overlap_seconds"),
        ),
        (
            json!({"scope": "send", "overlap_seconds": 5}),
            Some("overlap_seconds"),
        ),
    ] {
        assert_problem(
            &answer(with_key(client.post(&keys), &aviso.admin_key).json(&body)).await,
            StatusCode::BAD_REQUEST,
            field,
        );
    }
}

pub async fn a_read_key_reads_but_cannot_send(aviso: Aviso) {
    let client = Client::new();
    let issued = answer(
        with_key(
            client.post(aviso.url(&format!("/v1/admin/apps/{}/keys", aviso.app_id))),
            &aviso.admin_key,
        )
        .json(&json!({"scope": "read"})),
    )
    .await;
    assert_eq!(issued.0, StatusCode::CREATED, "{}", issued.1);
    let read = issued.1["api_key"].as_str().unwrap().to_owned();
    for path in [
        "/v1/notifications",
        "/v1/notifications/history",
        "/v1/subscribers/stats",
        "/v1/app",
    ] {
        let got = answer(with_key(client.get(aviso.url(path)), &read)).await;
        assert_eq!(got.0, StatusCode::OK, "GET {path}: {}", got.1);
    }
    assert_eq!(
        answer(with_key(client.get(aviso.url("/v1/app")), &read))
            .await
            .1["scope"],
        "read"
    );
    let estimate = answer(
        with_key(client.post(aviso.url("/v1/audience/estimate")), &read)
            .json(&json!({"audience": "all"})),
    )
    .await;
    assert_eq!(estimate.0, StatusCode::OK, "{}", estimate.1);
    // An estimate checks its audience as a notification does (an empty id is no recipient).
    let empty_id = answer(
        with_key(client.post(aviso.url("/v1/audience/estimate")), &read)
            .json(&json!({"audience": {"external_ids": [""]}})),
    )
    .await;
    assert_problem(
        &empty_id,
        StatusCode::BAD_REQUEST,
        Some("audience.external_ids[0]"),
    );
    let send = json!({"audience": "all", "content": {"title": "Hi"}});
    let refused =
        answer(with_key(client.post(aviso.url("/v1/notifications")), &read).json(&send)).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, None);
    assert!(
        refused.1["detail"].as_str().unwrap().contains("`send`"),
        "{}",
        refused.1
    );
    assert_problem(
        &answer(
            with_key(client.put(aviso.url("/v1/profiles/crm-1")), &read)
                .json(&json!({"tags": {"a": "b"}})),
        )
        .await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_problem(
        &answer(with_key(client.get(aviso.url("/v1/admin/apps")), &read)).await,
        StatusCode::FORBIDDEN,
        None,
    );
    // A send key sends, and is no admin.
    let sent =
        answer(with_key(client.post(aviso.url("/v1/notifications")), &aviso.api_key).json(&send))
            .await;
    assert_eq!(sent.0, StatusCode::CREATED, "{}", sent.1);
    assert_problem(
        &answer(with_key(
            client.get(aviso.url("/v1/admin/apps")),
            &aviso.api_key,
        ))
        .await,
        StatusCode::FORBIDDEN,
        None,
    );
}

pub async fn one_apps_key_never_sees_another_apps_data(aviso: Aviso) {
    let client = Client::new();
    let (other, other_key) = new_app(&client, &aviso, "Other").await;
    // App A: a profile, a subscriber and a notification.
    let profile = answer(
        with_key(client.put(aviso.url("/v1/profiles/crm-a")), &aviso.api_key)
            .json(&json!({"attributes": {"age": 40}})),
    )
    .await;
    assert_eq!(profile.0, StatusCode::OK, "{}", profile.1);
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    let subscription = json!({"subscription": {"endpoint": "https://127.0.0.1:9/push/a", "keys": {
        "p256dh": aviso::push::base64url::encode(&key_pair.pub_as_raw().unwrap()),
        "auth": aviso::push::base64url::encode(&auth)}}, "locale": "pt-BR"});
    let subscribed = answer(
        client
            .post(aviso.public("/subscriptions"))
            .json(&subscription),
    )
    .await;
    assert_eq!(subscribed.0, StatusCode::CREATED, "{}", subscribed.1);
    let sent = answer(
        with_key(client.post(aviso.url("/v1/notifications")), &aviso.api_key)
            .json(&json!({"audience": "all", "content": {"title": "For A"}, "send_at": "2099-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(sent.0, StatusCode::CREATED, "{}", sent.1);
    let id = sent.1["id"].as_str().unwrap();

    // A's key sees A's data.
    let stats = answer(with_key(
        client.get(aviso.url("/v1/subscribers/stats")),
        &aviso.api_key,
    ))
    .await;
    assert_eq!(stats.1["total"], 1, "{}", stats.1);
    assert_eq!(stats.1["by_language"], json!({"pt": 1}));
    assert_eq!(stats.1["by_push_service"], json!({"127.0.0.1": 1}));
    let history = answer(with_key(
        client.get(aviso.url("/v1/notifications/history")),
        &aviso.api_key,
    ))
    .await;
    assert_eq!(history.1["notifications"][0]["id"], id, "{}", history.1);

    // B's key sees none of it.
    for request in [
        client.get(aviso.url(&format!("/v1/notifications/{id}"))),
        client.post(aviso.url(&format!("/v1/notifications/{id}/cancel"))),
        client.get(aviso.url("/v1/profiles/crm-a")),
    ] {
        assert_problem(
            &answer(with_key(request, &other_key)).await,
            StatusCode::NOT_FOUND,
            None,
        );
    }
    let history = answer(with_key(
        client.get(aviso.url("/v1/notifications/history")),
        &other_key,
    ))
    .await;
    assert_eq!(history.1["notifications"], json!([]), "{}", history.1);
    let stats = answer(with_key(
        client.get(aviso.url("/v1/subscribers/stats")),
        &other_key,
    ))
    .await;
    assert_eq!(stats.1["total"], 0, "{}", stats.1);
    assert_eq!(stats.1["by_language"], json!({}));
    let reach = answer(
        with_key(client.post(aviso.url("/v1/audience/estimate")), &other_key)
            .json(&json!({"audience": {"segment": {"attribute": {"key": "age", "op": "gte", "value": 18}}}})),
    )
    .await;
    assert_eq!(reach.1["reach"], 0, "{}", reach.1);
    let own = answer(with_key(client.get(aviso.url("/v1/app")), &other_key)).await;
    assert_eq!(own.1["app_id"], other.as_str());
    // Nor may it manage apps, its own or A.
    for path in [
        format!("/v1/admin/apps/{}", aviso.app_id),
        format!("/v1/admin/apps/{other}"),
    ] {
        assert_problem(
            &answer(
                with_key(client.patch(aviso.url(&path)), &other_key).json(&json!({"demo": true})),
            )
            .await,
            StatusCode::FORBIDDEN,
            None,
        );
    }
}

pub async fn history_pages_and_filters(aviso: Aviso) {
    let client = Client::new();
    let mut ids = Vec::new();
    for (i, audience) in [json!("all"), json!({"external_ids": ["x"]}), json!("all")]
        .into_iter()
        .enumerate()
    {
        let sent = answer(
            with_key(client.post(aviso.url("/v1/notifications")), &aviso.api_key)
                .json(&json!({"audience": audience, "content": {"title": format!("n{i}")}, "send_at": "2099-01-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(sent.0, StatusCode::CREATED, "{}", sent.1);
        ids.push(sent.1["id"].as_str().unwrap().to_owned());
        // Distinct creation times, so that the order is the order of creation.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancelled = with_key(
        client.post(aviso.url(&format!("/v1/notifications/{}/cancel", ids[0]))),
        &aviso.api_key,
    )
    .sent()
    .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let page = |query: &str| {
        let request = with_key(
            client.get(aviso.url(&format!("/v1/notifications/history?{query}"))),
            &aviso.api_key,
        );
        async move { answer(request).await }
    };
    let titles = |v: &Value| -> Vec<String> {
        v["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = page("limit=2").await;
    assert_eq!(titles(&first.1), vec![ids[2].clone(), ids[1].clone()]);
    assert!(first.1["notifications"][0]["counters"].is_object());
    let cursor = first.1["next_cursor"].as_str().unwrap().to_owned();
    let second = page(&format!("limit=2&cursor={cursor}")).await;
    assert_eq!(titles(&second.1), vec![ids[0].clone()]);
    assert!(second.1.get("next_cursor").is_none(), "{}", second.1);
    assert_eq!(
        titles(&page("status=cancelled").await.1),
        vec![ids[0].clone()]
    );
    assert_eq!(
        titles(&page("audience=external_ids").await.1),
        vec![ids[1].clone()]
    );
    assert_eq!(
        titles(&page("audience=all&status=queued").await.1),
        vec![ids[2].clone()]
    );
    assert_eq!(
        titles(&page("created_from_ms=4102444800000").await.1),
        Vec::<String>::new()
    );
    for (query, field) in [
        ("limit=0", Some("limit")),
        ("cursor=zz", Some("cursor")),
        ("status=sent", None),
        ("colour=red", None),
    ] {
        assert_problem(&page(query).await, StatusCode::BAD_REQUEST, field);
    }
}

backends!(
    apps_change_while_serving,
    the_apps_commands_work_against_the_running_server,
    rotated_keys_overlap_then_stop,
    a_read_key_reads_but_cannot_send,
    one_apps_key_never_sees_another_apps_data,
    history_pages_and_filters
);
