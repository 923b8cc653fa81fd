-- Reference application: the tables around a user in the app whose DELETE /api/users/{id}
-- endpoint this project monitors (see docs/integrity-checks.md). Used by the demo, the tests and
-- the benchmark. Idempotent: every statement is IF NOT EXISTS, so applying it twice is harmless.
--
-- Conventions copied from the original (Prisma on PostgreSQL): uuid ids, quoted camelCase
-- column names, and the delete actions of the original foreign keys:
--   cascade   accounts, sessions, user_addresses, catering_requests, on_demand_requests,
--             user_audits."userId"
--   set null  user_audits."performedBy"
--   no action dispatches."driverId"/"userId", file_uploads."userId", addresses."createdBy":
--             the endpoint must clean these up by hand, which is what the manual_cleanup
--             checks verify.
-- Every foreign-key column has its own index: PostgreSQL does not create one for the referencing
-- side, and without it both the cascade on delete and the integrity checks' NOT EXISTS
-- anti-joins would scan the whole child table.

CREATE TABLE IF NOT EXISTS profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL,
    name text,
    -- text, not an enum: the original stores the Prisma enum, but imported or hand-edited rows
    -- can carry other values, which the invalid_user_types check exists to find.
    type text NOT NULL DEFAULT 'CLIENT',
    status text NOT NULL DEFAULT 'ACTIVE',
    "createdAt" timestamptz NOT NULL DEFAULT now(),
    "updatedAt" timestamptz NOT NULL DEFAULT now(),
    -- soft delete: the row stays, these record who removed it, when and why
    "deletedAt" timestamptz,
    "deletedBy" uuid,
    "deletionReason" text
);
-- Exact-match unique like the original; case variants ("A@x.com" / "a@x.com") still slip
-- through, which is what duplicate_profile_emails looks for.
CREATE UNIQUE INDEX IF NOT EXISTS profiles_email_key ON profiles (email);
CREATE INDEX IF NOT EXISTS profiles_lower_email_idx ON profiles (lower(email));
-- Partial: soft-deleted profiles are few, and every soft-delete check starts from them.
CREATE INDEX IF NOT EXISTS profiles_deleted_at_idx ON profiles ("deletedAt")
    WHERE "deletedAt" IS NOT NULL;

CREATE TABLE IF NOT EXISTS accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    "userId" uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    type text NOT NULL DEFAULT 'oauth',
    provider text NOT NULL,
    "providerAccountId" text NOT NULL,
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS accounts_user_id_idx ON accounts ("userId");

CREATE TABLE IF NOT EXISTS sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    "sessionToken" text NOT NULL,
    "userId" uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    expires timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON sessions ("userId");

CREATE TABLE IF NOT EXISTS addresses (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    street1 text NOT NULL,
    city text NOT NULL,
    state text,
    zip text,
    -- no action: an address may be shared, so deleting its creator must not remove it
    "createdBy" uuid REFERENCES profiles (id),
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS addresses_created_by_idx ON addresses ("createdBy");

CREATE TABLE IF NOT EXISTS user_addresses (
    "userId" uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    "addressId" uuid NOT NULL REFERENCES addresses (id) ON DELETE CASCADE,
    "isDefault" boolean NOT NULL DEFAULT false,
    PRIMARY KEY ("userId", "addressId")
);
-- "userId" is served by the primary key's leading column; "addressId" needs its own index.
CREATE INDEX IF NOT EXISTS user_addresses_address_id_idx ON user_addresses ("addressId");

CREATE TABLE IF NOT EXISTS catering_requests (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    "userId" uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    "pickupAddressId" uuid REFERENCES addresses (id),
    "deliveryAddressId" uuid REFERENCES addresses (id),
    status text NOT NULL DEFAULT 'PENDING',
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS catering_requests_user_id_idx ON catering_requests ("userId");
CREATE INDEX IF NOT EXISTS catering_requests_pickup_address_id_idx
    ON catering_requests ("pickupAddressId");
CREATE INDEX IF NOT EXISTS catering_requests_delivery_address_id_idx
    ON catering_requests ("deliveryAddressId");

CREATE TABLE IF NOT EXISTS on_demand_requests (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    "userId" uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    "pickupAddressId" uuid REFERENCES addresses (id),
    "deliveryAddressId" uuid REFERENCES addresses (id),
    status text NOT NULL DEFAULT 'PENDING',
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS on_demand_requests_user_id_idx ON on_demand_requests ("userId");
CREATE INDEX IF NOT EXISTS on_demand_requests_pickup_address_id_idx
    ON on_demand_requests ("pickupAddressId");
CREATE INDEX IF NOT EXISTS on_demand_requests_delivery_address_id_idx
    ON on_demand_requests ("deliveryAddressId");

CREATE TABLE IF NOT EXISTS user_audits (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    "userId" uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    -- set null: the trail of what an admin did survives the admin's own deletion
    "performedBy" uuid REFERENCES profiles (id) ON DELETE SET NULL,
    action text NOT NULL,
    changes jsonb,
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS user_audits_user_id_idx ON user_audits ("userId");
CREATE INDEX IF NOT EXISTS user_audits_performed_by_idx ON user_audits ("performedBy");

CREATE TABLE IF NOT EXISTS dispatches (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- no action on both: deliveries are business records, the endpoint detaches them by hand
    "driverId" uuid REFERENCES profiles (id),
    "userId" uuid REFERENCES profiles (id),
    status text NOT NULL DEFAULT 'PENDING',
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dispatches_driver_id_idx ON dispatches ("driverId");
CREATE INDEX IF NOT EXISTS dispatches_user_id_idx ON dispatches ("userId");

CREATE TABLE IF NOT EXISTS file_uploads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- no action: the endpoint must null this or remove the file (and the object in storage)
    "userId" uuid REFERENCES profiles (id),
    "fileName" text NOT NULL,
    "fileUrl" text NOT NULL,
    "uploadedAt" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS file_uploads_user_id_idx ON file_uploads ("userId");
