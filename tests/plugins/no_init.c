/*
 * no_init.c — a shared library that is not an engine plugin (it exports no
 * lg_plugin_init): installing it must be refused.
 */
int			not_a_plugin(void);

/* Some function, so the library is not empty. */
int
not_a_plugin(void)
{
	return 42;
}
