/*
 * jsonb_get.h — reading members of jsonb values, shared by the functions
 * that take OpenAI-shaped jsonb (chat.c, tool_calls.c).
 */
#ifndef LLAMAGPU_JSONB_GET_H
#define LLAMAGPU_JSONB_GET_H

#include "postgres.h"

#include "utils/jsonb.h"

/* The member key of a jsonb object container, or NULL. */
static inline JsonbValue *
jsonb_member(JsonbContainer *obj, const char *key)
{
	return getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
}

/* Whether v is a jsonb object (a container). */
static inline bool
jsonb_is_object(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

/* Whether v is a jsonb array (a container). */
static inline bool
jsonb_is_array(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

#endif							/* LLAMAGPU_JSONB_GET_H */
