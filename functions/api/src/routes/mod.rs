//! One module per resource. Each lists its routes once, with `resource_routes!`.

/// Makes, from one list of a resource's handlers grouped by path (`[list, create], [show]`), both
/// the router the function serves (`served`) and the same routes described for the OpenAPI
/// document (`documented`). The function serves the document as checked in
/// (`docs/openapi.json`, which a test keeps equal to `documented`), so the code that builds the
/// document — a tenth of the binary, and part of every cold start — is not in the function.
macro_rules! resource_routes {
    ($( [$($handler:ident),+ $(,)?] ),+ $(,)?) => {
        /// This resource's routes, as the function serves them.
        pub fn served() -> axum::Router<crate::state::Shared> {
            #[allow(unused_imports)]
            use utoipa::Path as _;
            #[allow(unused_imports)]
            use utoipa_axum::PathItemExt as _;
            let router = axum::Router::new();
            $(
                let mut path = String::new();
                let mut methods = axum::routing::MethodRouter::new();
                $(
                    utoipa_axum::paste! {
                        let handler_path = [<__path_ $handler>]::path();
                        // Checked once per cold start: a group of handlers shares one path.
                        assert!(path.is_empty() || path == handler_path, "one group, one path: {path} and {handler_path}");
                        path = handler_path;
                        for method in [<__path_ $handler>]::methods() {
                            methods = methods.on(method.to_method_filter(), $handler);
                        }
                    }
                )+
                // As utoipa-axum routes an empty path.
                let router = router.route(if path.is_empty() { "/" } else { &path }, methods);
            )+
            router
        }

        /// The same routes with their OpenAPI description.
        pub fn documented() -> utoipa_axum::router::OpenApiRouter<crate::state::Shared> {
            utoipa_axum::router::OpenApiRouter::new() $( .routes(utoipa_axum::routes!($($handler),+)) )+
        }
    };
}

pub mod automations;
pub mod broadcasts;
pub mod contacts;
pub mod conversations;
pub mod health;
pub mod jobs;
pub mod numbers;
pub mod templates;

/// Every resource's routes, in one list: `every_resource!(start, served)` merges each
/// resource's `served()` into `start`.
macro_rules! every_resource {
    ($start:expr, $routes:ident) => {
        $start
            .merge(crate::routes::health::$routes())
            .merge(crate::routes::numbers::$routes())
            .merge(crate::routes::conversations::$routes())
            .merge(crate::routes::contacts::$routes())
            .merge(crate::routes::templates::$routes())
            .merge(crate::routes::jobs::$routes())
            .merge(crate::routes::automations::$routes())
            .merge(crate::routes::broadcasts::$routes())
    };
}
pub(crate) use every_resource;
