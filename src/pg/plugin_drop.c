/*
 * plugin_drop.c — a database's engine plugins go with its extension and
 * with the database: DROP EXTENSION llamagpu and DROP DATABASE make the
 * database's plugin list (plugin_files.c) go when they commit, and the
 * supervisor restarts the engine without those plugins.
 *
 * An object access hook sees both drops.  An event trigger could not: one
 * owned by the extension is dropped with it before sql_drop fires, and
 * DROP DATABASE fires no event trigger at all.
 */
#include "llamagpu.h"

#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"

static object_access_hook_type prev_object_access_hook = NULL;

/* OAT_DROP of the llamagpu extension or of a database: its list goes at commit. */
static void
plugin_drop_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access != OAT_DROP)
		return;
	/* called before the catalog row goes, so the name still finds it */
	if (classId == ExtensionRelationId && objectId == get_extension_oid("llamagpu", true))
		PluginExtensionDropped();
	else if (classId == DatabaseRelationId)
		PluginDatabaseDropped(objectId);
}

/* Install the hook (from _PG_init, preloaded or not). */
void
PluginDropHookInit(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = plugin_drop_access;
}
