use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use veloflux_domain::{Email, PlatformRole, Role, TenantId, UserId};

use crate::error::corrupt;
use crate::tenants::insert_tenant;
use crate::{NewTenant, Page, PageRequest, Store, StoreError, Tenant, time};

/// A user account as stored. The password hash is never part of it; see
/// [`Store::password_hash`].
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Identifier.
    pub id: UserId,
    /// Normalised e-mail address, unique across the platform.
    pub email: Email,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Set for platform administrators.
    pub platform_role: Option<PlatformRole>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last successful sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
}

/// What it takes to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// E-mail address.
    pub email: Email,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// PHC string of the password's argon2id hash; `None` for accounts that sign in by
    /// magic link or OIDC only.
    pub password_hash: Option<String>,
    /// Platform role, if any.
    pub platform_role: Option<PlatformRole>,
}

/// A partial change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
}

/// Totals over the whole platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformCounts {
    /// Tenants in all.
    pub tenants: i64,
    /// Tenants whose status is active.
    pub active_tenants: i64,
    /// Users in all.
    pub users: i64,
    /// Platform administrators.
    pub platform_admins: i64,
}

/// A user's place in one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// What the user may do there.
    pub role: Role,
    /// When the user joined.
    pub created_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "u.id, u.email, u.first_name, u.last_name, u.platform_role, \
     u.created_at, u.updated_at, u.last_login_at";

impl Store {
    /// Creates a user without any membership. An e-mail already in use is a `Conflict`.
    pub async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = insert_user(&mut tx, new).await?;
        tx.commit().await?;
        self.user(id).await
    }

    /// Creates a tenant and a user who owns it, atomically: both exist or neither does.
    pub async fn create_user_with_tenant(
        &self,
        user: &NewUser,
        tenant: &NewTenant,
    ) -> Result<(User, Tenant), StoreError> {
        let mut tx = self.pool.begin().await?;
        let user_id = insert_user(&mut tx, user).await?;
        let tenant_id = insert_tenant(&mut tx, tenant).await?;
        insert_membership(&mut tx, tenant_id, user_id, Role::Owner).await?;
        tx.commit().await?;
        Ok((self.user(user_id).await?, self.tenant(tenant_id).await?))
    }

    /// Creates a user who joins an existing tenant with `role`, atomically.
    pub async fn create_user_in_tenant(
        &self,
        user: &NewUser,
        tenant_id: TenantId,
        role: Role,
    ) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let user_id = insert_user(&mut tx, user).await?;
        insert_membership(&mut tx, tenant_id, user_id, role)
            .await
            .map_err(|err| match err {
                // The only foreign key that can fail here is the tenant's.
                StoreError::Database(_) => StoreError::NotFound,
                other => other,
            })?;
        tx.commit().await?;
        self.user(user_id).await
    }

    /// Reads one user.
    pub async fn user(&self, id: UserId) -> Result<User, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    /// Finds a user by e-mail address.
    pub async fn user_by_email(&self, email: &Email) -> Result<User, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.email = $1"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    /// The stored password hash of a user, if the account has a password.
    pub async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Lists every user (for platform administrators), oldest first.
    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id > $1 ORDER BY u.id LIMIT $2"
        ))
        .bind(page.after())
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
        .await?;
        let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(users, |u| u.id.to_string()))
    }

    /// Number of platform administrators.
    pub async fn count_platform_admins(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE platform_role = $1")
                .bind(PlatformRole::Admin.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Adds `user` to `tenant` with `role`; an existing membership is a `Conflict`.
    pub async fn add_membership(&self, tenant: TenantId, user: UserId, role: Role) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_membership(&mut tx, tenant, user, role).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The memberships of a user, oldest first.
    pub async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, user_id, role, created_at FROM memberships WHERE user_id = $1 \
             ORDER BY created_at, tenant_id",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(membership_from_row).collect()
    }

    /// The users of one tenant with their roles, oldest first.
    pub async fn tenant_users(&self, tenant: TenantId, page: &PageRequest) -> Result<Page<(User, Role)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, m.role FROM users u JOIN memberships m ON m.user_id = u.id \
             WHERE m.tenant_id = $1 AND u.id > $2 ORDER BY u.id LIMIT $3"
        ))
        .bind(tenant.to_string())
        .bind(page.after())
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
        .await?;
        let with_roles = rows
            .iter()
            .map(|row| {
                let role =
                    Role::parse(&row.try_get::<String, _>("role")?).map_err(|e| StoreError::Corrupt(e.message))?;
                Ok((user_from_row(row)?, role))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page.finish(with_roles, |(u, _)| u.id.to_string()))
    }

    /// The role of `user` in `tenant`, or `None` when the user is not a member.
    pub async fn role_in(&self, tenant: TenantId, user: UserId) -> Result<Option<Role>, StoreError> {
        let raw: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant.to_string())
                .bind(user.to_string())
                .fetch_optional(&self.pool)
                .await?;
        raw.map(|r| Role::parse(&r).map_err(|e| StoreError::Corrupt(e.message)))
            .transpose()
    }

    /// Applies a partial change to a user's profile.
    pub async fn update_user(&self, id: UserId, update: &UserUpdate) -> Result<User, StoreError> {
        let current = self.user(id).await?;
        sqlx::query("UPDATE users SET first_name = $1, last_name = $2, updated_at = $3 WHERE id = $4")
            .bind(update.first_name.clone().unwrap_or(current.first_name))
            .bind(update.last_name.clone().unwrap_or(current.last_name))
            .bind(time::encode(time::now()))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        self.user(id).await
    }

    /// Changes the role of a member; `NotFound` when the user is not a member.
    pub async fn set_role(&self, tenant: TenantId, user: UserId, role: Role) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE memberships SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(tenant.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Removes a member from a tenant; `NotFound` when the user is not a member.
    pub async fn remove_membership(&self, tenant: TenantId, user: UserId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Number of members of a tenant who hold `role`.
    pub async fn count_role(&self, tenant: TenantId, role: Role) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = $2")
                .bind(tenant.to_string())
                .bind(role.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Totals for the platform dashboard.
    pub async fn platform_counts(&self) -> Result<PlatformCounts, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM tenants) AS tenants, (SELECT COUNT(*) FROM users) AS users, \
             (SELECT COUNT(*) FROM users WHERE platform_role IS NOT NULL) AS platform_admins, \
             (SELECT COUNT(*) FROM tenants WHERE status = 'active') AS active_tenants",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(PlatformCounts {
            tenants: row.try_get("tenants")?,
            active_tenants: row.try_get("active_tenants")?,
            users: row.try_get("users")?,
            platform_admins: row.try_get("platform_admins")?,
        })
    }

    /// Records a successful sign-in.
    pub async fn touch_last_login(&self, id: UserId) -> Result<DateTime<Utc>, StoreError> {
        let now = time::now();
        let done = sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(time::encode(now))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(now)
    }
}

async fn insert_user(conn: &mut sqlx::AnyConnection, new: &NewUser) -> Result<UserId, StoreError> {
    let id = UserId::new();
    let now = time::encode(time::now());
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, platform_role, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(new.email.as_str())
    .bind(new.password_hash.clone())
    .bind(new.first_name.clone())
    .bind(new.last_name.clone())
    .bind(new.platform_role.map(|r| r.as_str()))
    .bind(now.clone())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

async fn insert_membership(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(tenant.to_string())
        .bind(user.to_string())
        .bind(role.as_str())
        .bind(time::encode(time::now()))
        .execute(conn)
        .await?;
    Ok(())
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::parse(&row.try_get::<String, _>("id")?).map_err(corrupt("user id"))?,
        email: Email::parse(&row.try_get::<String, _>("email")?).map_err(corrupt("user email"))?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        platform_role: row
            .try_get::<Option<String>, _>("platform_role")?
            .map(|raw| PlatformRole::parse(&raw))
            .transpose()
            .map_err(corrupt("platform role"))?,
        created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
        updated_at: time::decode(&row.try_get::<String, _>("updated_at")?)?,
        last_login_at: time::decode_opt(row.try_get("last_login_at")?)?,
    })
}

fn membership_from_row(row: &AnyRow) -> Result<Membership, StoreError> {
    Ok(Membership {
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(corrupt("membership tenant"))?,
        user_id: UserId::parse(&row.try_get::<String, _>("user_id")?).map_err(corrupt("membership user"))?,
        role: Role::parse(&row.try_get::<String, _>("role")?).map_err(corrupt("membership role"))?,
        created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
    })
}
