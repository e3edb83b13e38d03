"""One GIN index over the full text and the filters, in place of the text-only and tags-only ones.

With the text alone indexed, a search for a word plus channel and status fetched every ticket with
the word (about 1% of them) and filtered the rest out on the heap. A multicolumn GIN index (the
scalar columns through btree_gin) intersects all conditions inside the index, for any subset of
its columns: measured at 1M tickets, 15x fewer buffers and 13x less execution (docs/benchmarks.md).
It serves tags-only and text-only searches too, so it replaces both older indexes.
"""

from django.contrib.postgres.operations import BtreeGinExtension
from django.db import migrations

CREATE = """
CREATE INDEX ticketsearch_ticket_search_filters ON ticketsearch_ticket
    USING gin (search_vector, tags, channel, status, crm_kind, connection_id, agent_id);
DROP INDEX ticketsearch_ticket_search;
DROP INDEX ticketsearch_ticket_tags;
"""
REVERSE = """
CREATE INDEX ticketsearch_ticket_search ON ticketsearch_ticket USING gin (search_vector);
CREATE INDEX ticketsearch_ticket_tags ON ticketsearch_ticket USING gin (tags);
DROP INDEX ticketsearch_ticket_search_filters;
"""


class Migration(migrations.Migration):
    dependencies = [("ticketsearch", "0005_crm_comment_store")]

    operations = [BtreeGinExtension(), migrations.RunSQL(CREATE, reverse_sql=REVERSE)]
