"""Stemming in the ticket's language: a text search configuration per ticket, and the ones in use.

Each ticket gets `search_config` (regconfig: english, german, ... or simple, from its language in
the CRM), and the generated search_vector is built with it, so `refund` finds `refunded` in English
tickets. The vector also holds one lexeme naming its configuration, `lang <oid>` (a lexeme with a
space, which no parser makes of any text; the oid because a configuration's name depends on the
search path, so it may not be used in a generated column): a search across languages is then one
tsquery, `('lang 13164' & <words as English stems them>) | ('lang 3748' & <words as written>)`,
which keeps `-word` exact per language and is answered by the GIN index alone. PostgreSQL 15 cannot change a generated column's expression: the column is dropped (its
multicolumn GIN index goes with it) and added again, which computes it for every stored row, and
the index is made again. Rows stored before keep 'simple' (their language was not recorded), which
is exactly how they were indexed; `import_tickets --since` re-reads them with their language.
`SearchLanguage` lists the configurations in use: a search parses its words in each of them.
"""

from django.db import migrations, models

FORWARD = """
ALTER TABLE ticketsearch_ticket DROP COLUMN search_vector;
ALTER TABLE ticketsearch_ticket ADD COLUMN search_config regconfig NOT NULL DEFAULT 'simple';
ALTER TABLE ticketsearch_ticket ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector(search_config, subject), 'A')
    || setweight(to_tsvector(search_config, description), 'B')
    || setweight(to_tsvector(search_config, comments_text || ' ' || transcript), 'C')
    || array_to_tsvector(ARRAY['lang ' || search_config::oid::text])
) STORED;
CREATE INDEX ticketsearch_ticket_search_filters ON ticketsearch_ticket
    USING gin (search_vector, tags, channel, status, crm_kind, connection_id, agent_id);
INSERT INTO ticketsearch_searchlanguage (config, first_seen_at)
    SELECT 'simple', now() WHERE EXISTS (SELECT 1 FROM ticketsearch_ticket);
"""
REVERSE = """
ALTER TABLE ticketsearch_ticket DROP COLUMN search_vector;
ALTER TABLE ticketsearch_ticket DROP COLUMN search_config;
ALTER TABLE ticketsearch_ticket ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig, subject), 'A')
    || setweight(to_tsvector('simple'::regconfig, description), 'B')
    || setweight(to_tsvector('simple'::regconfig, comments_text || ' ' || transcript), 'C')
) STORED;
CREATE INDEX ticketsearch_ticket_search_filters ON ticketsearch_ticket
    USING gin (search_vector, tags, channel, status, crm_kind, connection_id, agent_id);
"""


class Migration(migrations.Migration):
    dependencies = [("ticketsearch", "0007_import_state_comments_cursor_help")]

    operations = [
        migrations.CreateModel(
            name="SearchLanguage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "config",
                    models.CharField(max_length=63, unique=True, verbose_name="text search configuration"),
                ),
                ("first_seen_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.RunSQL(FORWARD, reverse_sql=REVERSE),
    ]
