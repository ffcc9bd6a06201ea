-- Role names have one spelling: trimmed and lowercase (the application writes them so since
-- issue 16). Rows written before, in other spellings (`Admin`, ` ADMIN `), are rewritten so the
-- app never receives them in X-Auth-Roles. Where one user holds several spellings of a role,
-- one row stays: an active one before an inactive one, the already-normal spelling before
-- another, then the oldest.
DELETE FROM user_roles
WHERE EXISTS (
    SELECT 1 FROM user_roles o
    WHERE o.user_id = user_roles.user_id
      AND o.id <> user_roles.id
      AND lower(trim(o.role_name)) = lower(trim(user_roles.role_name))
      AND (
            o.is_active > user_roles.is_active
         OR (o.is_active = user_roles.is_active
             AND (o.role_name = lower(trim(o.role_name)))
                 > (user_roles.role_name = lower(trim(user_roles.role_name))))
         OR (o.is_active = user_roles.is_active
             AND (o.role_name = lower(trim(o.role_name)))
                 = (user_roles.role_name = lower(trim(user_roles.role_name)))
             AND o.id < user_roles.id)
      )
);
UPDATE user_roles SET role_name = lower(trim(role_name)) WHERE role_name <> lower(trim(role_name));
