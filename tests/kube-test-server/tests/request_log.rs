//! The request log through a real kube client: the user comes from the
//! kubeconfig's token, the attributes from each request as sent.

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_test_server::rbac::describe;
use kube_test_server::{ServerOptions, TestServer};
use serde_json::json;

const USER: &str = "system:serviceaccount:ferrolb-system:ferrolb-controller";

async fn client_as(server: &TestServer, token: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig_with_token(token)).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn each_call_is_logged_with_the_token_as_user_and_its_attributes() {
    let options = ServerOptions {
        request_log: true,
        ..Default::default()
    };
    let server = TestServer::start_with("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let client = client_as(&server, USER).await;
    let anonymous = server.client().await.unwrap();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    assert!(secrets.get_opt("key").await.unwrap().is_none());
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "key"}, "data": {}})).unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let svcs: Api<Service> = Api::all(client.clone());
    svcs.list(&ListParams::default().fields("metadata.name=web"))
        .await
        .unwrap();
    let mine: Api<Service> = Api::namespaced(anonymous, "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }))
    .unwrap();
    mine.create(&PostParams::default(), &svc).await.unwrap();
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}});
    Api::<Service>::namespaced(client, "default")
        .patch_status("web", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();

    let log: Vec<(Option<String>, String, u16)> = server
        .requests()
        .into_iter()
        .filter(|r| r.info.resource_request)
        .map(|r| (r.user, describe(&r.info), r.code))
        .collect();
    let user = Some(USER.to_owned());
    assert_eq!(
        log,
        [
            (
                user.clone(),
                "get core/secrets ns=default name=key".into(),
                404
            ),
            (user.clone(), "create core/secrets ns=default".into(), 201),
            (user.clone(), "list core/services name=web".into(), 200),
            (None, "create core/services ns=default".into(), 201),
            (
                user,
                "patch core/services/status ns=default name=web".into(),
                200
            ),
        ]
    );

    server.record_requests(false);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn the_log_is_off_unless_asked_for() {
    let server = TestServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = client_as(&server, USER).await;
    Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(server.requests().is_empty());
    server.record_requests(true);
    Api::<Service>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let log = server.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].info.verb, "list");
}
