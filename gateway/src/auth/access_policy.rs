//! Who may call what: one table of every route × the roles allowed, with the camera a route is
//! about (security staff only reach the cameras their token names). The router is built from a
//! route list that a test checks against this table, so a route cannot be added without a rule.

use super::claims::Claims;
use super::role::Role;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: static page assets, liveness, login/logout and CORS preflights (no data).
    Public,
    /// A valid token with one of these roles; `camera_param` names the path parameter holding a
    /// camera id that a `security` token must list.
    Roles {
        /// Roles allowed.
        roles: &'static [Role],
        /// Path parameter with the camera id, if the route is about one camera.
        camera_param: Option<&'static str>,
    },
}

/// One route's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    /// HTTP method.
    pub method: &'static str,
    /// Route template, as registered in the router.
    pub path: &'static str,
    /// What it requires.
    pub access: Access,
}

const fn roles(roles: &'static [Role]) -> Access {
    Access::Roles {
        roles,
        camera_param: None,
    }
}

/// Every route of the HTTPS API and what it requires.
pub const RULES: &[RouteRule] = &[
    RouteRule {
        method: "GET",
        path: "/",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/app.css",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/app.js",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/recordings.js",
        access: Access::Public,
    },
    // The consultation pages: static files with no data (the invite stays in the fragment).
    RouteRule {
        method: "GET",
        path: "/consultation",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/join",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/consultation.js",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/consultation.css",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/healthz",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/readyz",
        access: roles(&[Role::Ops]),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/login",
        access: Access::Public,
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/logout",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/session",
        access: roles(&Role::ALL),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/cameras",
        access: roles(&[Role::Ops, Role::Security]),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/cameras/{id}/whep",
        access: Access::Roles {
            roles: &[Role::Security],
            camera_param: Some("id"),
        },
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/cameras/{id}/snapshot.jpg",
        access: Access::Roles {
            roles: &[Role::Security],
            camera_param: Some("id"),
        },
    },
    RouteRule {
        method: "OPTIONS",
        path: "/api/v1/cameras/{id}/whep",
        access: Access::Public,
    },
    RouteRule {
        method: "DELETE",
        path: "/api/v1/sessions/{sid}",
        access: roles(&[Role::Ops, Role::Security]),
    },
    RouteRule {
        method: "OPTIONS",
        path: "/api/v1/sessions/{sid}",
        access: Access::Public,
    },
    // Ops see which recordings exist (disk use, gaps); only security staff see footage.
    RouteRule {
        method: "GET",
        path: "/api/v1/cameras/{id}/recordings",
        access: Access::Roles {
            roles: &[Role::Ops, Role::Security],
            camera_param: Some("id"),
        },
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/recordings/{segment}",
        access: Access::Roles {
            roles: &[Role::Security],
            camera_param: Some(SEGMENT_PARAM),
        },
    },
    // Consultations: clinicians start and end theirs (the handler checks it is theirs); an
    // invitation is the invitee's credential (256-bit, single-use, expiring), so joining is
    // public; the signalling socket takes the clinician's or the invitee's token.
    RouteRule {
        method: "POST",
        path: "/api/v1/consultations",
        access: roles(&[Role::Clinician]),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/consultations/join",
        access: Access::Public,
    },
    RouteRule {
        method: "DELETE",
        path: "/api/v1/consultations/{id}",
        access: roles(&[Role::Clinician]),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/consultations/{id}/signal",
        access: roles(&[Role::Clinician, Role::Patient]),
    },
];

/// The path parameter that holds a recorded segment's id (`<camera>.<start>`): its camera is the
/// camera the rule checks.
pub const SEGMENT_PARAM: &str = "segment";

/// The camera a route's camera parameter names: the value itself, or a segment id's camera.
pub fn camera_of(param: &str, value: &str) -> Option<String> {
    if param == SEGMENT_PARAM {
        crate::recording::segment_catalogue::parse_segment_id(value).map(|(c, _)| c.to_owned())
    } else {
        Some(value.to_owned())
    }
}

/// The rule for a method and route template.
pub fn rule(method: &str, path: &str) -> Option<&'static RouteRule> {
    RULES.iter().find(|r| r.method == method && r.path == path)
}

/// The outcome of checking a caller against a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// 403, with the reason.
    Forbid(String),
}

/// Checks verified claims against a `Roles` rule; `camera` is the value of its camera parameter.
pub fn decide(access: Access, claims: &Claims, camera: Option<&str>) -> Decision {
    let Access::Roles {
        roles,
        camera_param,
    } = access
    else {
        return Decision::Allow;
    };
    if !roles.contains(&claims.role) {
        return Decision::Forbid(format!(
            "the role '{}' may not use this route",
            claims.role.as_str()
        ));
    }
    if camera_param.is_some() && claims.role == Role::Security {
        match camera {
            Some(camera) if claims.may_view(camera) => {}
            _ => {
                return Decision::Forbid("this token does not grant access to this camera".into());
            }
        }
    }
    Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, cameras: &[&str]) -> Claims {
        Claims {
            sub: "t".into(),
            role,
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
            consultation: None,
            iss: "straja".into(),
            iat: 0,
            nbf: 0,
            exp: 1,
            jti: "j".into(),
        }
    }

    #[test]
    fn every_rule_is_unique() {
        for (i, a) in RULES.iter().enumerate() {
            for b in &RULES[i + 1..] {
                assert!(
                    (a.method, a.path) != (b.method, b.path),
                    "duplicate rule {} {}",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn security_staff_reach_only_their_cameras() {
        // Live video and snapshots are footage: ops see health, not pictures.
        for (method, path) in [
            ("POST", "/api/v1/cameras/{id}/whep"),
            ("GET", "/api/v1/cameras/{id}/snapshot.jpg"),
        ] {
            let footage = rule(method, path).unwrap().access;
            let staff = claims(Role::Security, &["gate"]);
            assert_eq!(decide(footage, &staff, Some("gate")), Decision::Allow);
            assert!(matches!(
                decide(footage, &staff, Some("yard")),
                Decision::Forbid(_)
            ));
            for role in [Role::Ops, Role::Clinician, Role::Patient] {
                assert!(
                    matches!(
                        decide(footage, &claims(role, &["gate"]), Some("gate")),
                        Decision::Forbid(_)
                    ),
                    "{method} {path} as {role:?}"
                );
            }
        }
    }
}
