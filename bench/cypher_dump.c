/*
 * cypher_dump.c — prints the Cypher that memoryd's Neo4j backend sends for
 * the LTM reads the benchmark measures, as JSON string literals, so that the
 * "straight to Neo4j" baseline runs exactly memoryd's statements (compiled
 * from src/ltm/ltm_neo4j_cypher.h; op_search() in ltm_neo4j.c assembles a
 * full-text search without filters as CY_SEARCH_FULLTEXT + CY_SEARCH_PAGE).
 *
 *   cypher_dump search   the full-text search, parameters {skip, limit, q}
 *   cypher_dump get      the rule read of GET /v1/ltm/rules/{id}, parameter {id}
 */
#include <stdio.h>
#include <string.h>

#include "ltm_neo4j_cypher.h"

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv)
{
    char buf[8192];
    if (argc == 2 && strcmp(argv[1], "search") == 0) {
        snprintf(buf, sizeof(buf), "%s%s", CY_SEARCH_FULLTEXT, CY_SEARCH_PAGE);
        json_str(buf);
    } else if (argc == 2 && strcmp(argv[1], "get") == 0) {
        json_str(CY_GET);
    } else {
        fprintf(stderr, "usage: cypher_dump search|get\n");
        return 1;
    }
    putchar('\n');
    return 0;
}
